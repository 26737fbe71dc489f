"""What the CPU can do: its model and whether it computes bfloat16 natively.

Training speed depends on the machine, and so does the value of the
``mixed_bfloat16`` precision option: on a CPU with AMX or AVX512-BF16 it
trains the CIFAR-10 models about twice as fast as float32, on one without
them TensorFlow emulates bfloat16 and a step is many times *slower*.  Result
records name the CPU (:func:`cpu_model`, :func:`cpu_features`), and a run
under a bfloat16 policy on such a CPU warns (:func:`warn_if_bfloat16_is_emulated`).
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path

#: The CPU flags that matter for this project's training speed.
FEATURES = ("avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
#: Flags any of which means bfloat16 matrix arithmetic in hardware.
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")

_CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo(text: str | None) -> str | None:
    if text is not None:
        return text
    try:
        return _CPUINFO.read_text()
    except OSError:  # not Linux
        return None


def _field(text: str, name: str) -> str | None:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_model(cpuinfo: str | None = None) -> str | None:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere).

    Args:
        cpuinfo: the text of ``/proc/cpuinfo`` (default: read it).
    """
    text = _cpuinfo(cpuinfo)
    name = _field(text, "model name") if text else None
    return name or platform.processor() or None


def cpu_features(cpuinfo: str | None = None) -> list[str] | None:
    """Which of :data:`FEATURES` the CPU has, or None where that is unknown."""
    text = _cpuinfo(cpuinfo)
    flags = _field(text, "flags") if text else None
    if flags is None:
        return None
    have = set(flags.split())
    return [f for f in FEATURES if f in have]


def bfloat16_in(features: list[str] | None) -> bool | None:
    """Whether :func:`cpu_features` (or a record's ``cpu_features``) include
    bfloat16 arithmetic; None where the features are unknown."""
    if features is None:
        return None
    return any(f in features for f in BFLOAT16_FLAGS)


def native_bfloat16(cpuinfo: str | None = None) -> bool | None:
    """True if the CPU computes bfloat16 in hardware, False if not, None if unknown."""
    return bfloat16_in(cpu_features(cpuinfo))


def warn_if_bfloat16_is_emulated(policy: str, accelerator: str | None = None,
                                 cpuinfo: str | None = None) -> bool:
    """Warn when a bfloat16 policy will run emulated on this CPU.

    Args:
        policy: the Keras dtype policy name (e.g. ``"mixed_bfloat16"``).
        accelerator: the ``hardware["accelerator"]`` of
            :func:`laperm.run.provenance.environment_info` (default: asked of the
            backend, only for a bfloat16 policy on such a CPU); a GPU is not judged.
        cpuinfo: the text of ``/proc/cpuinfo`` (default: read it).

    Returns:
        True if it warned.
    """
    if "bfloat16" not in policy or native_bfloat16(cpuinfo) is not False:
        return False
    if accelerator is None:
        accelerator = accelerator_name()
    if not accelerator.startswith("none"):
        return False
    warnings.warn(
        f"the {policy} policy on this CPU ({cpu_model(cpuinfo) or 'unknown model'}) runs "
        f"emulated: it has none of the bfloat16 instructions ({', '.join(BFLOAT16_FLAGS)}), "
        "so training is many times slower than in float32; train in float32 on this "
        "machine (--precision float32, the default).",
        RuntimeWarning, stacklevel=2)
    return True


def accelerator_name() -> str:
    """The accelerators the Keras backend sees, or ``"none (CPU)"``."""
    import keras  # deferred: hardware facts are read without Keras too

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return ", ".join(g.name for g in gpus) if gpus else "none (CPU)"
        if backend == "jax":
            import jax

            devices = jax.devices()
            if devices[0].platform == "cpu":
                return "none (CPU)"
            return ", ".join(getattr(d, "device_kind", str(d)) for d in devices)
        if backend == "torch":
            import torch

            if not torch.cuda.is_available():
                return "none (CPU)"
            return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except Exception:  # pragma: no cover - informational only
        return "unknown"
    return "unknown"
