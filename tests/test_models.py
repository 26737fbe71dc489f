"""Tests for :mod:`laperm.models` (the paper's architectures, SPEC section 4)."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest

from laperm import models

# Parameter counts of the models built as in SPEC 4 (10 classes, default inputs).
EXPECTED_PARAMS = {
    "conv2": 4_304_202,
    "conv4": 2_429_514,
    "conv7": 325_578,  # stated in the paper / SPEC 4
    "conv13": 15_001_418,  # "about 15.0 M"
    "resnet50": 763_882,  # "about 0.76 M"
    "f1": 7_840,
    "f2": 109_184,
}


def _is_he_uniform(init) -> bool:
    if isinstance(init, keras.initializers.HeUniform):
        return True
    cfg = init.get_config() if hasattr(init, "get_config") else {}
    return (
        isinstance(init, keras.initializers.VarianceScaling)
        and cfg.get("scale") == 2.0
        and cfg.get("mode") == "fan_in"
        and cfg.get("distribution") == "uniform"
    )


def _is_l2(reg, value=1e-4) -> bool:
    return isinstance(reg, keras.regularizers.L2) and np.isclose(reg.get_config()["l2"], value)


def _layers_of(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


# --------------------------------------------------------------------------- #
# Parameter counts, names, shapes
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_counts(name):
    model = models.get(name)
    assert model.count_params() == EXPECTED_PARAMS[name]
    assert model.name == name
    assert isinstance(model, keras.Model)


def test_conv7_has_exactly_325578_parameters():
    assert models.conv7().count_params() == 325_578


def test_approximate_counts_quoted_in_spec():
    assert round(models.conv13().count_params() / 1e6, 1) == 15.0
    assert round(models.resnet(50).count_params() / 1e6, 2) == 0.76


def test_f1_f2_use_bias_adds_only_biases():
    assert models.f1(use_bias=True).count_params() == 7_840 + 10
    assert models.f2(use_bias=True).count_params() == 109_184 + 128 + 64 + 10
    for layer in _layers_of(models.f2(), keras.layers.Dense):
        assert not layer.use_bias
    for layer in _layers_of(models.f2(use_bias=True), keras.layers.Dense):
        assert layer.use_bias
        assert isinstance(layer.bias_initializer, keras.initializers.Zeros)


@pytest.mark.parametrize(
    "name, shape",
    [("conv7", (28, 28, 1)), ("f1", (28, 28)), ("f2", (28, 28)), ("conv2", (32, 32, 3)),
     ("conv4", (32, 32, 3)), ("conv13", (32, 32, 3)), ("resnet50", (32, 32, 3))],
)
def test_default_input_and_output_shapes(name, shape):
    model = models.get(name)
    assert tuple(model.input_shape[1:]) == shape
    assert tuple(model.output_shape) == (None, 10)


@pytest.mark.parametrize("name", ["conv2", "conv4", "conv7", "conv13", "f1", "f2"])
def test_input_shape_and_num_classes_arguments(name):
    shape = (28, 28, 1) if name in ("conv7", "f1", "f2") else (32, 32, 3)
    model = models.get(name, input_shape=shape, num_classes=7)
    assert tuple(model.input_shape[1:]) == shape
    assert tuple(model.output_shape) == (None, 7)


def test_resnet_num_classes_and_input_shape():
    model = models.resnet(depth=8, input_shape=(32, 32, 1), num_classes=100)
    assert tuple(model.input_shape[1:]) == (32, 32, 1)
    assert tuple(model.output_shape) == (None, 100)
    assert model.name == "resnet8"


@pytest.mark.parametrize("factory, shape, section", [
    (models.conv2, (32, 32, 3), "Sections 5.2 and 5.4"),
    (models.conv4, (32, 32, 3), "Sections 5.2 and 5.4"),
    (models.conv7, (28, 28, 1), "Section 5.1"),
    (models.conv13, (32, 32, 3), "Sections 5.2 and 5.4"),
    (models.resnet, (32, 32, 3), "Section 5.4"),
    (models.f1, (28, 28), "Section 5.5"),
    (models.f2, (28, 28), "Section 5.5"),
])
def test_every_factory_has_input_shape_and_num_classes_args(factory, shape, section):
    """Both are keyword arguments with the paper's defaults, and the docstring's
    first line names the model's section of the paper."""
    params = inspect.signature(factory).parameters
    assert tuple(params["input_shape"].default) == shape
    assert params["num_classes"].default == 10
    assert section in factory.__doc__.splitlines()[0]


# --------------------------------------------------------------------------- #
# Registry and errors
# --------------------------------------------------------------------------- #
def test_registry_contains_paper_models():
    for name in ("conv2", "conv4", "conv7", "conv13", "resnet50", "f1", "f2"):
        assert name in models.MODELS
        assert name in models.names()


def test_get_is_case_insensitive_and_accepts_any_resnet_depth():
    assert models.get("Conv7").name == "conv7"
    assert models.get("resnet14").name == "resnet14"
    assert models.get("RESNET20").count_params() == models.resnet(20).count_params()
    assert models.get("f2", use_bias=True).count_params() == 109_386


@pytest.mark.parametrize("bad", ["vgg16", "conv3", "", "resnet", "resnet51", None, 7])
def test_unknown_name_raises_value_error_listing_valid_names(bad):
    with pytest.raises(ValueError) as info:
        models.get(bad)
    message = str(info.value)
    for name in ("conv2", "conv4", "conv7", "conv13", "resnet50", "f1", "f2"):
        assert name in message


# --------------------------------------------------------------------------- #
# Initialisers, regularisers, layer order (SPEC 4)
# --------------------------------------------------------------------------- #
def test_conv7_layers():
    model = models.conv7()
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Conv2D", "Conv2D", "Conv2D", "Dropout", "Conv2D", "Conv2D", "Conv2D",
                     "Dropout", "Conv2D", "Flatten", "Dropout", "Dense"]
    convs = _layers_of(model, keras.layers.Conv2D)
    assert [c.filters for c in convs] == [32, 32, 32, 64, 64, 64, 128]
    assert [c.kernel_size[0] for c in convs] == [3, 3, 5, 3, 3, 5, 4]
    assert [c.strides[0] for c in convs] == [1, 1, 2, 1, 1, 2, 1]
    assert [c.padding for c in convs] == ["valid", "valid", "same"] * 2 + ["valid"]
    assert [d.rate for d in _layers_of(model, keras.layers.Dropout)] == [0.4, 0.4, 0.4]
    for layer in convs + _layers_of(model, keras.layers.Dense):
        assert _is_he_uniform(layer.kernel_initializer)
        assert _is_he_uniform(layer.bias_initializer)  # biases He-uniform too
        assert layer.kernel_regularizer is None
    assert model.layers[-1].activation is keras.activations.softmax


@pytest.mark.parametrize("name", ["conv2", "conv4", "conv13"])
def test_cifar_convnets_initialisers_and_l2(name):
    model = models.get(name)
    convs = _layers_of(model, keras.layers.Conv2D)
    dense = _layers_of(model, keras.layers.Dense)
    for layer in convs:
        assert layer.kernel_size == (3, 3) and layer.padding == "same"
        assert layer.activation is keras.activations.relu
    for layer in convs + dense:
        assert _is_he_uniform(layer.kernel_initializer)
        assert _is_he_uniform(layer.bias_initializer)
    for layer in convs + dense[:-1]:
        assert _is_l2(layer.kernel_regularizer)
    assert dense[-1].kernel_regularizer is None
    assert dense[-1].units == 10 and dense[-1].activation is keras.activations.softmax
    # ReLU then BatchNorm: every conv is directly followed by a BatchNorm.
    for i, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            assert isinstance(model.layers[i + 1], keras.layers.BatchNormalization)


def test_conv2_conv4_layer_order():
    head = ["Flatten", "Dense", "Dropout", "BatchNormalization", "Dense", "BatchNormalization",
            "Dropout", "Dense"]
    conv2 = [type(layer).__name__ for layer in models.conv2().layers[1:]]
    assert conv2 == ["Conv2D", "BatchNormalization", "Dropout", "Conv2D", "BatchNormalization",
                     "MaxPooling2D"] + head
    conv4 = [type(layer).__name__ for layer in models.conv4().layers[1:]]
    assert conv4 == (["Conv2D", "BatchNormalization", "Dropout", "Conv2D", "BatchNormalization",
                      "MaxPooling2D"] * 2 + head)
    assert [d.rate for d in _layers_of(models.conv4(), keras.layers.Dropout)] == [0.3, 0.4, 0.5,
                                                                                  0.5]
    assert [d.units for d in _layers_of(models.conv2(), keras.layers.Dense)] == [256, 256, 10]


def test_conv13_layer_order():
    model = models.conv13()
    convs = _layers_of(model, keras.layers.Conv2D)
    assert [c.filters for c in convs] == [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    assert len(_layers_of(model, keras.layers.MaxPooling2D)) == 5
    # Dropout .3 after conv 1; .4 after each other conv that is not last in its block
    # (7 of them); .5 after the last pool and in the head.
    rates = [d.rate for d in _layers_of(model, keras.layers.Dropout)]
    assert rates == [0.3] + [0.4] * 7 + [0.5, 0.5]
    seq = [type(layer).__name__ for layer in model.layers]
    for i, name in enumerate(seq):
        if name == "Dropout" and i < len(seq) - 6:
            assert seq[i - 1] == "BatchNormalization" and seq[i + 1] == "Conv2D"
    tail = [type(layer).__name__ for layer in model.layers[-7:]]
    assert tail == ["MaxPooling2D", "Dropout", "Flatten", "Dense", "BatchNormalization",
                    "Dropout", "Dense"]
    assert [d.units for d in _layers_of(model, keras.layers.Dense)] == [512, 10]


def test_resnet_initialisers_l2_and_structure():
    model = models.resnet(50)
    convs = _layers_of(model, keras.layers.Conv2D)
    for layer in convs:
        assert _is_he_uniform(layer.kernel_initializer)
        assert isinstance(layer.bias_initializer, keras.initializers.Zeros)
        assert _is_l2(layer.kernel_regularizer)
        assert layer.padding == "same"
        assert layer.activation is keras.activations.linear
    projections = [c for c in convs if c.kernel_size == (1, 1)]
    assert [(p.filters, p.strides) for p in projections] == [(32, (2, 2)), (64, (2, 2))]
    assert [c.filters for c in convs if c.strides == (2, 2) and c.kernel_size == (3, 3)] == [32,
                                                                                             64]
    assert len(_layers_of(model, keras.layers.BatchNormalization)) == 49
    assert len(_layers_of(model, keras.layers.Add)) == 24
    pool = _layers_of(model, keras.layers.AveragePooling2D)
    assert len(pool) == 1 and pool[0].pool_size == (8, 8)
    dense = _layers_of(model, keras.layers.Dense)
    assert len(dense) == 1 and dense[0].kernel_regularizer is None
    assert _is_he_uniform(dense[0].kernel_initializer)


def test_resnet_projection_conv_sits_before_second_bn():
    """The authors' files store the 1x1 shortcut conv between a block's second
    conv and that conv's BatchNorm; the checkpoints load by this order."""
    weighted = [layer for layer in models.resnet(50).layers if layer.weights]
    kinds = ["P" if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (1, 1)
             else type(layer).__name__[0] for layer in weighted]
    seq = "".join(kinds)
    assert seq.count("P") == 2
    for i in (i for i, k in enumerate(seq) if k == "P"):
        assert seq[i - 1] == "C" and seq[i + 1] == "B"
        assert weighted[i - 1].kernel_size == (3, 3) and weighted[i - 1].strides == (1, 1)


def test_f1_f2_structure():
    model = models.f1()
    (dense,) = _layers_of(model, keras.layers.Dense)
    assert not dense.use_bias and dense.units == 10
    assert _is_he_uniform(dense.kernel_initializer) and dense.kernel_regularizer is None
    model = models.f2()
    dense = _layers_of(model, keras.layers.Dense)
    assert [d.units for d in dense] == [128, 64, 10]
    assert [d.activation for d in dense] == [keras.activations.relu, keras.activations.relu,
                                            keras.activations.softmax]
    assert _is_l2(dense[0].kernel_regularizer) and _is_l2(dense[1].kernel_regularizer)
    assert dense[2].kernel_regularizer is None
    assert all(not d.use_bias for d in dense)
    assert type(model.layers[1]).__name__ == "Flatten"


def test_module_is_backend_agnostic():
    source = inspect.getsource(models)
    assert "import tensorflow" not in source and "from tensorflow" not in source


# --------------------------------------------------------------------------- #
# Every factory trains for one step
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "name, kwargs",
    [("conv2", {}), ("conv4", {}), ("conv7", {}), ("conv13", {}), ("resnet8", {}),
     ("f1", {}), ("f2", {}), ("f2", {"use_bias": True})],
)
def test_fit_one_step(name, kwargs):
    keras.utils.set_random_seed(0)
    model = models.get(name, **kwargs)
    shape = tuple(model.input_shape[1:])
    rng = np.random.default_rng(0)
    x = rng.random((4, *shape), dtype=np.float32)
    y = rng.integers(0, 10, size=(4,))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    before = [np.array(w) for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    loss = history.history["loss"][0]
    assert np.isfinite(loss)
    after = [np.array(w) for w in model.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    probs = model.predict(x, verbose=0)
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)
