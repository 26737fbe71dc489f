"""Folder names of `python -m laperm.reproduce` runs."""

from __future__ import annotations

import pytest

from laperm.experiment import paper_config
from laperm.reproduce import main, run_name


def test_run_names_tell_reduced_runs_apart():
    assert run_name(paper_config("conv2")) == "conv2_laperm_s0"
    assert run_name(paper_config("conv2").adam_baseline()) == "conv2_adam_s0"
    assert run_name(paper_config("conv2", epochs=8, seed=1)) == "conv2_laperm_s1_e8"
    reduced = paper_config("conv4", epochs=2, train_fraction=0.25)
    assert run_name(reduced) == "conv4_laperm_s0_e2_f25"
    assert run_name(reduced.adam_baseline()) == "conv4_adam_s0_e2_f25"


def test_unknown_experiment_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["conv99"])
    assert exc.value.code == 2
    assert "conv7_k20" in capsys.readouterr().err


def test_export_of_a_finished_run_as_float16(tmp_path, data_dir, monkeypatch, capsys):
    """``--export --export-dtype float16`` stores a half-size copy with its own score."""
    from laperm import pretrained

    store = tmp_path / "pretrained"
    monkeypatch.setattr(pretrained, "_export_dir", lambda directory=None: store)
    monkeypatch.setenv("LAPERM_DATA_DIR", str(data_dir))
    args = ["f1", "--epochs", "1", "--train-fraction", "0.02", "--out", str(tmp_path / "runs"),
            "--export", "--export-dtype", "float16"]
    assert main(args) == 0
    entry = pretrained.manifest(store)["f1_laperm_s0_e1_f2"]
    assert entry["stored_dtype"] == "float16" and "test_accuracy_in_run" in entry
    assert "(float16, test " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(args[:-1] + ["bfloat16"])  # not a stored dtype: argparse lists the valid ones
    assert "float16" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["f1", "--export-dtype", "float16"])  # nothing to store: says what is missing
    assert "add --export" in capsys.readouterr().err


def test_another_input_is_named_and_hashed_apart(capsys):
    standardised = paper_config("conv2", preprocessing="cifar_standardize")
    assert run_name(standardised) == "conv2_laperm_s0_cifar_standardize"
    assert run_name(standardised.adam_baseline()) == "conv2_adam_s0_cifar_standardize"
    assert run_name(paper_config("conv2", preprocessing="cifar_raw")) == "conv2_laperm_s0"
    assert standardised.hash != paper_config("conv2").hash
    assert paper_config("conv2").hash == "fab1877d7d49"  # the paper-scale run's, unchanged
    with pytest.raises(ValueError, match="valid: scale01, cifar_raw"):
        paper_config("conv2", preprocessing="zca")
    with pytest.raises(SystemExit) as exc:
        main(["conv2", "--preprocessing", "zca"])
    assert exc.value.code == 2 and "cifar_standardize" in capsys.readouterr().err
