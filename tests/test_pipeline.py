"""The backend-neutral input pipeline (laperm.data.pipeline, make_dataset(pipeline="pydataset")).

Backend-agnostic: the main suite runs it under TensorFlow (where it is also
compared with the ``tf.data`` pipeline), scripts/test_jax.sh under JAX without
TensorFlow installed, scripts/test_torch.sh under torch.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from laperm import data
from laperm.run.backends import has_tensorflow
from laperm.data.pipeline import ArrayBatches, batch_seed

BACKEND = keras.backend.backend()


def images(n=40, shape=(28, 28), seed=2):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, *shape), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.uint8))


def pydataset(x, y, batch_size, **kw):
    return data.make_dataset(x, y, batch_size, pipeline="pydataset", **kw)


def batches(ds):
    return [ds[i] for i in range(len(ds))]


def test_default_pipeline_follows_the_backend():
    x, y = images(8)
    expected = "tf.data" if BACKEND == "tensorflow" else "pydataset"
    assert data.default_pipeline() == expected
    made = data.make_dataset(x, y, 4)
    assert isinstance(made, ArrayBatches) == (expected == "pydataset")


def test_shapes_dtypes_and_values():
    x, y = images(130)
    ds = pydataset(x, y, 32, preprocess="scale01")
    got = batches(ds)
    assert len(ds) == 5 and len(got[-1][0]) == 2
    xb, yb = got[0]
    assert xb.shape == (32, 28, 28, 1) and xb.dtype == np.float32 and yb.dtype == np.int32
    np.testing.assert_array_equal(xb[..., 0], (x[:32].astype(np.float32) / 255.0))
    assert yb.tolist() == y[:32].tolist()
    assert len(pydataset(x, y, 32, drop_remainder=True)) == 4
    cifar, labels = images(10, (32, 32, 3))
    xb, yb = pydataset(cifar, labels.reshape(-1, 1), 10)[0]
    assert xb.shape == (10, 32, 32, 3) and yb.shape == (10,)
    with pytest.raises(IndexError):
        ds[5]


@pytest.mark.skipif(not has_tensorflow(), reason="TensorFlow is not installed")
def test_without_augmentation_it_yields_the_tf_data_batches_bit_for_bit():
    x, y = images(203, (32, 32, 3))
    pre = data.make_preprocessor("cifar_standardize", x)
    kw = dict(preprocess=pre, shuffle=True, seed=5, epochs=3, first_epoch=1)
    ours = batches(pydataset(x, y, 50, **kw))
    theirs = [(np.asarray(a), np.asarray(b))
              for a, b in data.make_dataset(x, y, 50, pipeline="tf.data", **kw)]
    assert len(ours) == len(theirs) == 15
    for (xa, ya), (xb, yb) in zip(ours, theirs):
        assert xa.dtype == xb.dtype and ya.dtype == yb.dtype
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_epoch_order_is_the_documented_permutation():
    x, y = images(40)
    ds = pydataset(x, y, 8, shuffle=True, seed=5, epochs=2)
    labels = np.concatenate([b for _, b in batches(ds)])
    order = np.concatenate([data.epoch_order(40, 5, e) for e in (0, 1)])
    assert labels.tolist() == y[order].tolist()
    assert data.epoch_order(40, 5, 0).tolist() != data.epoch_order(40, 5, 1).tolist()


def test_augmented_epochs_depend_on_seed_epoch_and_batch_only():
    """A dataset rebuilt at epoch e (a resumed run) yields epoch e's batches,
    whatever was read before and in whatever order."""
    x, y = images(40)
    pre = data.make_preprocessor("scale01", x)

    def build(**kw):
        return pydataset(x, y, 8, preprocess=pre, augment="mnist", shuffle=True,
                         **{"seed": 5, **kw})

    whole = [b for b, _ in batches(build(epochs=3))]
    later = build(epochs=2, first_epoch=1)
    backwards = {i: later[i][0] for i in reversed(range(len(later)))}
    assert len(whole) == 15 and len(backwards) == 10
    for i in range(10):
        np.testing.assert_array_equal(whole[5 + i], backwards[i])
    plain = [b for b, _ in batches(pydataset(x, y, 8, preprocess=pre, shuffle=True, seed=5,
                                             epochs=1))]
    assert not np.allclose(whole[0], plain[0])  # it did augment
    assert whole[0].shape == plain[0].shape and whole[0].dtype == np.float32
    other_seed = build(seed=6, epochs=1)[0][0]
    assert not np.array_equal(other_seed, whole[0])
    with pytest.raises(ValueError, match="needs a seed"):
        pydataset(x, y, 8, epochs=2)


def test_batch_seeds_are_distinct_functions_of_their_arguments():
    seeds = {batch_seed(s, e, i, j) for s in (0, 1) for e in range(3) for i in range(4)
             for j in range(3)}
    assert len(seeds) == 2 * 3 * 4 * 3
    assert batch_seed(7, 2, 3, 1) == batch_seed(7, 2, 3, 1)
    assert all(0 <= s < 2**31 for s in seeds)


def test_each_random_draw_of_a_layer_gets_its_own_seed():
    """RandomTranslation draws a vertical and a horizontal shift: with one
    fixed seed for both they would be equal for every image."""
    n = 64
    x = np.zeros((n, 21, 21), np.uint8)
    x[:, 10, 10] = 255  # one bright pixel in the middle
    shift = keras.layers.RandomTranslation((-0.2, 0.2), (-0.2, 0.2), fill_mode="constant",
                                           interpolation="nearest", seed=1)
    out = pydataset(x, np.zeros(n, np.uint8), n, augment=shift, seed=3, epochs=1)[0][0][..., 0]
    where = np.array([np.unravel_index(np.argmax(img), img.shape) for img in out]) - 10
    assert np.ptp(where[:, 0]) > 0 and np.ptp(where[:, 1]) > 0
    assert not np.array_equal(where[:, 0], where[:, 1])


def test_one_pass_mode_reshuffles_after_every_epoch():
    x, y = images(24)
    ds = pydataset(x, y, 24, shuffle=True, seed=1)
    first = ds[0][1].tolist()
    assert ds[0][1].tolist() == first  # the same pass: the same order
    ds.on_epoch_end()
    second = ds[0][1].tolist()
    assert sorted(second) == sorted(first) and second != first
    assert second == y[data.epoch_order(24, 1, 1)].tolist()
    assert pydataset(x, y, 24)[0][1].tolist() == y.tolist()  # no shuffle: the stored order


def test_a_callable_augmentation_and_preprocessing():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    xb, _ = pydataset(x, np.array([1, 2]), 2, augment=lambda b: b[:, :, ::-1])[0]
    np.testing.assert_array_equal(xb, x[:, :, ::-1].astype(np.float32))
    xb, _ = pydataset(x, np.array([1, 2]), 2, preprocess=lambda b: b * 2.0)[0]
    np.testing.assert_array_equal(xb, x.astype(np.float32) * 2)


def test_fit_reads_every_epoch_of_an_epoch_indexed_dataset():
    x, y = images(40)
    ds = pydataset(x, y, 8, preprocess="scale01", shuffle=True, seed=0, epochs=3)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(batch)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(ds, epochs=3, steps_per_epoch=ds.steps_per_epoch, verbose=0,
                        shuffle=False, callbacks=[Spy()])
    assert len(history.history["loss"]) == 3 and seen == list(range(5)) * 3
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 15
    loss, acc = model.evaluate(pydataset(x, y, 16, preprocess="scale01"), verbose=0)
    assert np.isfinite(loss) and 0 <= acc <= 1


def test_bad_pipeline_names_and_tf_data_without_tensorflow(monkeypatch):
    x, y = images(4)
    with pytest.raises(ValueError, match="tf.data, pydataset"):
        data.make_dataset(x, y, 2, pipeline="grain")
    import laperm.run.backends

    monkeypatch.setattr(laperm.run.backends, "has_tensorflow", lambda: False)
    with pytest.raises(ImportError, match="needs TensorFlow.*pipeline='pydataset'"):
        data.make_dataset(x, y, 2, pipeline="tf.data")
    with pytest.raises(ValueError, match="workers=1"):
        ArrayBatches(x, y, 2, lambda b: b, epochs=1, workers=2)
