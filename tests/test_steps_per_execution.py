"""``run(..., steps_per_execution=N)``: the same steps in fewer calls, so the same run."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from laperm.experiment import paper_config, run
from laperm.run.train import StepsPerExecutionError


def _tiny(name):
    if name == "f1":  # no BatchNorm; 10 steps an epoch, a sync every 7 steps
        return paper_config("f1", epochs=2, train_fraction=0.02, validation_size=500,
                            sync_period=7), 5
    # BatchNorm and dropout; 5 steps an epoch (250 images of small_data_dir), a sync every 2
    return paper_config("conv2", epochs=2, validation_size=200, sync_period=2), 5


TORCH = keras.backend.backend() == "torch"


@pytest.mark.skipif(TORCH, reason="Keras runs one step per call under torch")
# conv2 trains two 2-epoch runs (about 26 s): the slow tier, beside the other real runs.
@pytest.mark.parametrize("name", ["f1", pytest.param("conv2", marks=pytest.mark.slow)])
def test_several_steps_per_execution_give_the_same_run(name, tmp_path, data_dir,
                                                       small_data_dir):
    if name == "conv2" and keras.backend.backend() == "jax":
        # 97 s of the JAX tier's 5 min (2026-12-04). Keras's JAX trainer runs several steps
        # per execution as a loop over the same one-step function, so f1 covers the
        # mechanism there; conv2's BatchNorm and dropout over several steps per execution
        # are covered under TensorFlow, whose trainer compiles them into one program.
        pytest.skip("conv2 runs under TensorFlow (main suite); f1 covers JAX's loop")
    cfg, steps = _tiny(name)
    if name == "conv2":
        data_dir = small_data_dir
    one, r1 = run(cfg, tmp_path / "one", data_dir=data_dir, progress=False)
    many, rn = run(cfg, tmp_path / "many", data_dir=data_dir, progress=False,
                   steps_per_execution=steps)
    assert r1["steps_per_execution"] == 1 and rn["steps_per_execution"] == steps
    assert rn["config_hash"] == r1["config_hash"]  # an execution detail, outside the hash
    assert list(many["sync_count"]) == list(one["sync_count"]) and one["sync_count"].iloc[-1] > 0
    for column in ("loss", "val_accuracy", "test_accuracy", "test_accuracy_unsynced"):
        np.testing.assert_allclose(many[column], one[column], atol=1e-6, err_msg=column)


@pytest.mark.skipif(TORCH, reason="under torch every value above 1 is refused")
def test_a_bad_steps_per_execution_is_refused_before_anything_is_written(tmp_path, data_dir):
    cfg, _ = _tiny("f1")
    with pytest.raises(StepsPerExecutionError, match="does not divide the 10 steps.*2, 5, 10"):
        run(cfg, tmp_path / "run", data_dir=data_dir, progress=False, steps_per_execution=4)
    assert not (tmp_path / "run").exists()
    for bad in (0, -2, 1.5, True):
        with pytest.raises(StepsPerExecutionError, match="positive integer"):
            run(cfg, tmp_path / "run", data_dir=data_dir, progress=False,
                steps_per_execution=bad)


@pytest.mark.skipif(not TORCH, reason="the torch backend's refusal")
def test_torch_refuses_several_steps_per_execution_in_one_line(tmp_path, data_dir):
    cfg, _ = _tiny("f1")
    with pytest.raises(StepsPerExecutionError, match="must be 1 under the torch backend"):
        run(cfg, tmp_path / "run", data_dir=data_dir, progress=False, steps_per_execution=5)
    assert not (tmp_path / "run").exists()
