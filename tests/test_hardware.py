"""The CPU's model and bfloat16 support, and the warning for an emulated bfloat16 policy."""

import warnings

import pytest

from laperm.run import hardware
from laperm.book.page import hardware_label

AMD = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 fma\n"
SAPPHIRE = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
            "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")


def test_cpu_model_and_features_are_read_from_cpuinfo():
    assert hardware.cpu_model(AMD) == "AMD EPYC"
    assert hardware.cpu_features(AMD) == []
    assert hardware.cpu_features(SAPPHIRE) == ["avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
    assert hardware.native_bfloat16(AMD) is False
    assert hardware.native_bfloat16(SAPPHIRE) is True
    assert hardware.native_bfloat16("processor\t: 0\n") is None  # no flags line: unknown


def test_only_a_bfloat16_policy_on_a_cpu_without_bfloat16_warns():
    with pytest.warns(RuntimeWarning, match="emulated.*float32"):
        assert hardware.warn_if_bfloat16_is_emulated("mixed_bfloat16", "none (CPU)", AMD)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not hardware.warn_if_bfloat16_is_emulated("mixed_bfloat16", "none (CPU)",
                                                         SAPPHIRE)
        assert not hardware.warn_if_bfloat16_is_emulated("float32", "none (CPU)", AMD)
        assert not hardware.warn_if_bfloat16_is_emulated("mixed_bfloat16", "NVIDIA H200", AMD)
        assert not hardware.warn_if_bfloat16_is_emulated("mixed_bfloat16", "none (CPU)",
                                                         "processor\t: 0\n")


def test_records_name_the_cpu_and_the_label_says_whether_bfloat16_is_native():
    from laperm.run.provenance import environment_info

    info = environment_info()["hardware"]
    # this machine's CPU, as /proc/cpuinfo (or platform.processor()) names it
    assert info["cpu"] == hardware.cpu_model() and info["cpu"]
    assert info["cpu_features"] == hardware.cpu_features()
    assert set(info["cpu_features"] or []) <= set(hardware.FEATURES)
    cpu = {"accelerator": "none (CPU)", "cpu_count": 2}
    assert hardware_label(cpu) == "CPU, 2 cores"  # records made before the CPU was named
    assert hardware_label({**cpu, "cpu": "AMD EPYC", "cpu_features": []}) == (
        "CPU, 2 cores (AMD EPYC; no native bfloat16)")
    assert hardware_label({**cpu, "cpu": "Xeon", "cpu_features": ["amx_bf16"]}).endswith(
        "(Xeon; native bfloat16)")
    assert hardware_label({**cpu, "cpu": "Xeon", "cpu_features": None}) == "CPU, 2 cores (Xeon)"
