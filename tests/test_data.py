"""Tests of laperm.data: loading, splits, preprocessing, augmentation, tf.data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laperm import data


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    yield


def _no_network(monkeypatch):
    import keras

    def fail():
        raise Exception("URL fetch failure on https://example.invalid: [Errno -3] no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", fail)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", fail)
    data.clear_cache()


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _tiny_mnist(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        x_train=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, n).astype(np.uint8),
        x_test=rng.integers(0, 256, (n // 2, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, n // 2).astype(np.uint8),
    )


# ---------------------------------------------------------------- loading


def test_load_mnist_offline(data_dir):
    (x_tr, y_tr), (x_te, y_te) = data.load("mnist", data_dir)
    assert x_tr.shape == (60000, 28, 28) and x_tr.dtype == np.uint8
    assert y_tr.shape == (60000,) and x_te.shape == (10000, 28, 28) and y_te.shape == (10000,)
    assert y_tr[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_te[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert not data.describe("mnist", data_dir).is_reduced_test_set


def test_load_cifar10_offline_reduced_test_set(data_dir):
    (x_tr, y_tr), (x_te, y_te) = data.load("cifar10", data_dir)
    assert x_tr.shape == (50000, 32, 32, 3) and x_tr.dtype == np.uint8
    assert y_tr.shape == (50000, 1) and y_te.shape == (len(x_te), 1)
    assert x_te.shape[1:] == (32, 32, 3)
    assert y_tr[:10, 0].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert y_te[:10, 0].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    info = data.describe("cifar10", data_dir)
    assert info.n_test == len(x_te) == 1000
    assert info.is_reduced_test_set
    assert "1000 exact test images" in info.test_note


def test_load_is_cached_and_read_only(data_dir):
    a = data.load("mnist", data_dir)
    b = data.load("mnist", data_dir)
    assert a[0][0] is b[0][0]
    with pytest.raises(ValueError, match="read-only"):
        a[0][0][0, 0, 0] = 1


def test_env_var_and_file_path(tmp_path, monkeypatch):
    _write(tmp_path / "mnist.npz", **_tiny_mnist())
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    (x, y), _ = data.load("mnist")
    assert x.shape == (20, 28, 28)
    monkeypatch.delenv(data.DATA_DIR_ENV)
    (x2, _), _ = data.load("MNIST", tmp_path / "mnist.npz")
    np.testing.assert_array_equal(x, x2)


def test_missing_file_without_network(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(data.DataNotFoundError) as info:
        data.load("mnist", data_dir=tmp_path)
    msg = str(info.value)
    assert "mnist.npz" in msg and data.DATA_DIR_ENV in msg and "data_dir" in msg
    assert str(tmp_path) in msg
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.__cause__ is not None  # chained, not swallowed
    with pytest.raises(data.DataNotFoundError, match="cifar10.npz"):
        data.load("cifar10", data_dir=tmp_path)


def test_unknown_name():
    with pytest.raises(ValueError, match="cifar10.*mnist"):
        data.load("imagenet")


def _damaged_cases(tmp_path):
    good = _tiny_mnist()
    garbage = tmp_path / "garbage" / "mnist.npz"
    garbage.parent.mkdir()
    garbage.write_bytes(b"this is not a zip file at all" * 10)
    cases = {"garbage": (garbage, "npz")}
    for label, change, expect in [
        ("keys", lambda d: d.pop("y_test"), "y_test"),
        ("shape", lambda d: d.update(x_train=np.zeros((20, 32, 32), np.uint8)), "shape"),
        ("dtype", lambda d: d.update(x_train=good["x_train"].astype(np.float32)), "uint8"),
        ("labels", lambda d: d.update(y_train=np.full(20, 11, np.uint8)), "labels"),
        ("length", lambda d: d.update(y_train=good["y_train"][:5]), "labels"),
    ]:
        d = dict(good)
        change(d)
        folder = tmp_path / label
        folder.mkdir()
        cases[label] = (_write(folder / "mnist.npz", **d), expect)
    npy = tmp_path / "npy"
    npy.mkdir()
    with open(npy / "mnist.npz", "wb") as fh:
        np.save(fh, np.zeros(3))
    cases["npy"] = (npy / "mnist.npz", "npz")
    return cases


def test_damaged_files(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    for label, (path, expect) in _damaged_cases(tmp_path).items():
        with pytest.raises(data.DataFormatError) as info:
            data.load("mnist", path.parent)
        msg = str(info.value)
        assert str(path) in msg, label
        assert expect in msg, (label, msg)
        assert isinstance(info.value, ValueError)


def test_refuses_jpeg_test_file(tmp_path):
    path = _write(tmp_path / "cifar10_test_jpeg.npz", x_test=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(data.DataFormatError, match="JPEG"):
        data.load("cifar10", path)


# ---------------------------------------------------------------- splits


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 300), frac=st.floats(0.01, 0.99), seed=st.integers(0, 2**32 - 1),
       stratify=st.booleans())
def test_train_val_split_properties(n, frac, seed, stratify):
    x = np.arange(n)
    y = x % 3
    n_val = int(round(frac * n))
    if not 1 <= n_val <= n - 1:
        with pytest.raises(ValueError):
            data.train_val_split(x, y, frac, seed=seed, stratify=stratify)
        return
    (xt, yt), (xv, yv) = data.train_val_split(x, y, frac, seed=seed, stratify=stratify)
    assert len(xv) == n_val and len(xt) == n - n_val
    assert set(xt.tolist()).isdisjoint(xv.tolist())
    np.testing.assert_array_equal(np.sort(np.concatenate([xt, xv])), x)
    np.testing.assert_array_equal(yt, xt % 3)
    (xt2, _), (xv2, _) = data.train_val_split(x, y, frac, seed=seed, stratify=stratify)
    np.testing.assert_array_equal(xv, xv2)


def test_split_seed_matters_and_counts():
    x = np.arange(1000)
    y = x % 10
    _, (a, _) = data.train_val_split(x, y, 100, seed=0)
    _, (b, _) = data.train_val_split(x, y, 100, seed=1)
    assert len(a) == 100 and not np.array_equal(a, b)
    _, (_, ys) = data.train_val_split(x, y, 0.1, seed=3, stratify=True)
    assert np.bincount(ys).tolist() == [10] * 10


@pytest.mark.parametrize("bad", [0, 10, 11, -1, 0.0, 1.0, 1.5, float("nan"), "a", None, True])
def test_split_bad_sizes(bad):
    expected = ("must be an int count or a float fraction" if bad is None or isinstance(bad, (str, bool))
                else "must be a fraction in \\(0, 1\\)" if isinstance(bad, float)
                else "must be between 1 and 9 for 10 samples")
    with pytest.raises(ValueError, match=f"val_size.*{expected}"):
        data.train_val_split(np.arange(10), np.arange(10), bad)


def test_subset():
    x = np.arange(1000)
    y = np.repeat(np.arange(10), 100)
    xs, ys = data.subset(x, y, 0.05, seed=0)
    assert len(xs) == 50 and np.bincount(ys).tolist() == [5] * 10
    np.testing.assert_array_equal(ys, y[xs])
    assert np.all(np.diff(xs) > 0)
    xs2, _ = data.subset(x, y, 50, seed=0)
    np.testing.assert_array_equal(xs, xs2)
    xr, _ = data.subset(x, y, 37, seed=1, stratify=False)
    assert len(xr) == 37
    assert len(data.subset(x, y, 1.0)[0]) == 1000
    for bad, message in ((0, "between 1 and 1000"), (1001, "between 1 and 1000"),
                         (0.0, r"a fraction in \(0, 1\]"), (1.01, r"a fraction in \(0, 1\]")):
        with pytest.raises(ValueError, match=f"fraction_or_count={bad} must be {message}"):
            data.subset(x, y, bad)
    with pytest.raises(ValueError, match="x has 1000 samples but y has 5"):
        data.subset(x, y[:5], 10)


# ---------------------------------------------------------------- preprocessing


@pytest.fixture(scope="module")
def cifar_like():
    rng = np.random.default_rng(0)
    base = np.array([125, 123, 114], np.float64)
    x = np.clip(rng.normal(base, [63, 62, 67], (600, 32, 32, 3)), 0, 255).astype(np.uint8)
    return x


def test_preprocessors(cifar_like):
    x = cifar_like
    raw = data.make_preprocessor("cifar_raw", x)(x)
    assert raw.dtype == np.float32 and raw.min() >= 0 and raw.max() == 255
    np.testing.assert_array_equal(raw, x)
    s01 = data.make_preprocessor("scale01", x)(x)
    assert 0 <= s01.min() and s01.max() == 1.0
    std = data.make_preprocessor("cifar_standardize", x)(x)
    std = std.astype(np.float64)
    np.testing.assert_allclose(std.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(std.std(axis=(0, 1, 2)), 1, atol=1e-5)
    pm = data.make_preprocessor("pixel_mean", x)
    out = pm(x)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out, x / 255.0 - (x / 255.0).mean(axis=0), atol=1e-5)


def test_preprocessor_fits_on_train_only(cifar_like):
    p = data.make_preprocessor("cifar_standardize", cifar_like[:300])
    test_out = p(cifar_like[300:] // 2)  # a different distribution stays off-centre
    assert test_out.mean() < -0.5


def test_mnist_gets_channel_axis():
    x = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    for name in data.PREPROCESSORS:
        p = data.make_preprocessor(name, x)
        assert p(x).shape == (10, 28, 28, 1)
        assert p(x[0]).shape == (28, 28, 1)
        assert p(x[..., None]).shape == (10, 28, 28, 1)


def test_unknown_preprocessor_and_augmentation():
    with pytest.raises(ValueError, match="scale01.*cifar_raw.*cifar_standardize.*pixel_mean"):
        data.make_preprocessor("zca", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="mnist.*cifar_conv.*resnet"):
        data.augmentation_layers("autoaugment")


# ---------------------------------------------------------------- augmentation / tf.data


def test_augmentation_layers_presets():
    import keras

    rot = data.augmentation_layers("mnist").layers
    assert [type(layer).__name__ for layer in rot] == ["RandomRotation", "RandomZoom",
                                                      "RandomTranslation"]
    assert rot[0].factor[1] == pytest.approx(10 / 360)
    assert all(layer.fill_mode == "nearest" for layer in rot)
    conv = data.augmentation_layers("cifar_conv").layers
    assert [type(layer).__name__ for layer in conv] == ["RandomRotation", "RandomTranslation",
                                                       "RandomFlip"]
    assert conv[0].factor[1] == pytest.approx(15 / 360)
    res = data.augmentation_layers("resnet").layers
    assert [type(layer).__name__ for layer in res] == ["RandomTranslation", "RandomFlip"]
    assert isinstance(data.augmentation_layers(None), keras.Sequential)


def test_make_dataset_shapes_and_batches(data_dir):
    (x, y), _ = data.load("mnist", data_dir)
    x, y = x[:130], y[:130]
    ds = data.make_dataset(x, y, 32, preprocess="scale01")
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 5 and len(batches[-1][0]) == 2
    xb, yb = batches[0]
    assert xb.shape == (32, 28, 28, 1) and xb.dtype == np.float32 and yb.dtype == np.int32
    np.testing.assert_allclose(xb[..., 0], x[:32] / 255.0, atol=1e-6)
    assert yb.tolist() == y[:32].tolist()
    assert len(list(data.make_dataset(x, y, 32, drop_remainder=True))) == 4


def test_make_dataset_cifar_augment_and_shuffle():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, (40, 1)).astype(np.uint8)
    pre = data.make_preprocessor("pixel_mean", x)
    plain = np.concatenate([b for b, _ in data.make_dataset(x, y, 16, preprocess=pre)
                            .as_numpy_iterator()])
    np.testing.assert_allclose(plain, pre(x), atol=1e-6)
    ds = data.make_dataset(x, y, 16, preprocess=pre, augment="cifar_conv", seed=3)
    aug, labels = zip(*ds.as_numpy_iterator())
    aug, labels = np.concatenate(aug), np.concatenate(labels)
    assert aug.shape == (40, 32, 32, 3) and aug.dtype == np.float32
    assert labels.shape == (40,) and labels.tolist() == y[:, 0].tolist()
    assert not np.allclose(aug, plain)
    again = np.concatenate([b for b, _ in data.make_dataset(
        x, y, 16, preprocess=pre, augment="cifar_conv", seed=3).as_numpy_iterator()])
    np.testing.assert_allclose(aug, again)  # seeded -> reproducible
    shuf = data.make_dataset(x, y, 40, preprocess=pre, shuffle=True, seed=0)
    xs, ys = next(iter(shuf.as_numpy_iterator()))
    assert sorted(ys.tolist()) == sorted(y[:, 0].tolist())
    assert not np.array_equal(ys, y[:, 0]) or not np.allclose(xs, plain)


def test_epoch_indexed_dataset_depends_on_seed_and_epoch_only():
    """Epoch e's batches (order and augmentation) are the same whether the
    dataset starts at epoch 0 or is rebuilt at epoch e, as a resumed run does."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 40)
    pre = data.make_preprocessor("scale01", x)

    def batches(**kw):
        return [b.numpy() for b, _ in data.make_dataset(x, y, 8, preprocess=pre, augment="mnist",
                                                        shuffle=True, seed=5, **kw)]

    whole = batches(epochs=3)
    later = batches(epochs=2, first_epoch=1)
    assert len(whole) == 15 and len(later) == 10
    for a, b in zip(whole[5:], later):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(whole[0], whole[5])  # another order and augmentation
    np.testing.assert_array_equal(data.epoch_order(40, 5, 1), data.epoch_order(40, 5, 1))
    with pytest.raises(ValueError, match="needs a seed"):
        data.make_dataset(x, y, 8, epochs=2)


def test_make_dataset_errors():
    x = np.zeros((4, 28, 28), np.uint8)
    with pytest.raises(ValueError, match="make_preprocessor"):
        data.make_dataset(x, np.zeros(4), 2, preprocess="pixel_mean")
    with pytest.raises(ValueError, match="x has 4 samples but y has 3"):
        data.make_dataset(x, np.zeros(3), 2)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        data.make_dataset(x, np.zeros(4), 0)


def test_make_dataset_custom_augment_callable():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    ds = data.make_dataset(x, np.array([1, 2]), 2, augment=lambda b: b[:, :, ::-1])
    xb, _ = next(iter(ds.as_numpy_iterator()))
    np.testing.assert_array_equal(xb, x[:, :, ::-1].astype(np.float32))
