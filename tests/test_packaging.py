"""The package works installed: a wheel in a fresh virtual environment, used
from a folder that is not a checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_lists_every_subpackage():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "laperm").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"
    assert config["package-dir"]["laperm._pretrained"] == "pretrained"


SMOKE = textwrap.dedent("""
    import json, os, subprocess, sys, tempfile
    import numpy as np, keras, laperm
    from pathlib import Path

    assert laperm.__file__.startswith(sys.prefix) and "site-packages" in laperm.__file__, (
        laperm.__file__, sys.prefix)  # the wheel's copy, not the checkout
    # One LaPerm fit step.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(laperm.LaPerm(keras.optimizers.Adam(), sync_period=1),
                  "sparse_categorical_crossentropy")
    model.fit(np.ones((8, 4), "float32"), np.zeros(8), batch_size=8, verbose=0)
    assert int(laperm.find_laperm(model).sync_count.numpy()) == 1
    # load_model of a saved LaPerm model, in a new process.
    model.save("m.keras")
    subprocess.run([sys.executable, "-c",
                    "import keras, laperm; m = keras.models.load_model('m.keras'); "
                    "assert type(m.optimizer).__name__ == 'LaPerm'"], check=True)
    # Weights shipped with the package.
    net, meta = laperm.pretrained.load("conv7_laperm_s0")
    assert "site-packages" in str(laperm.pretrained.weights_dir()), laperm.pretrained.weights_dir()
    assert net.count_params() > 0 and meta["test_accuracy"] > 0.99
    # Nothing is written next to the package: outside a checkout, a clear error.
    out = subprocess.run([sys.executable, "-m", "laperm.reproduce", "f1", "--epochs", "1"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "no laperm project here" in out.stderr, out.stderr[-500:]
    print("SMOKE OK")
""")


@pytest.mark.slow
def test_installed_wheel_works_from_another_folder(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    str(ROOT)], check=True, timeout=600)
    (wheel,) = wheels.glob("laperm-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-deps", str(wheel)], check=True, timeout=600)
    # The dependencies (Keras, TensorFlow, ...) are this environment's, reached through a
    # .pth line (not installed again: minutes); its own laperm, an editable install of the
    # checkout, is not reachable that way (a .pth line adds a folder, not its .pth files).
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    import sysconfig

    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "laperm-test-deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("LAPERM_ROOT", "PYTHONPATH")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run([str(python), "-c", SMOKE], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "SMOKE OK" in result.stdout, (
        result.stdout[-2000:] + result.stderr[-3000:])
    assert sorted(p.name for p in elsewhere.iterdir()) == ["m.keras"]
