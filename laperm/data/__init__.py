"""Datasets, preprocessing, augmentation and input pipelines of the paper's experiments.

Paper: Qiu & Suda, *Train-by-Reconnect: Decoupling Locations of Weights from
Their Values*, NeurIPS 2020.  MNIST is used in Sections 5.1 (Conv7) and 5.5
(F1, F2); CIFAR-10 in Sections 5.2 and 5.4 (Conv2/4/13, ResNet50).

Three modules, one job each, their public names gathered here:

* :mod:`laperm.data.datasets`: the files (:func:`load`, :func:`describe`,
  :func:`fingerprint`; ``$LAPERM_DATA_DIR`` or a download), their checks,
  and the splits (:func:`train_val_split`, :func:`subset`);
* :mod:`laperm.data.preprocess`: the named preprocessing
  (:func:`make_preprocessor`) and augmentation (:func:`augmentation_layers`)
  of Section 5 and the authors' notebooks;
* :mod:`laperm.data.pipeline`: :func:`make_dataset`, a ``tf.data`` pipeline
  under the TensorFlow Keras backend and a ``keras.utils.PyDataset`` of NumPy
  batches under any other, with batches a function of (seed, epoch) only.

The offline CIFAR-10 file beside this project has the first 1000 exact test
images only: :func:`describe` says so, and every report names its test set.
"""

from __future__ import annotations

from laperm.data.datasets import (DATA_DIR_ENV, DATASETS, FULL_TEST_SIZE, DataFormatError,
                                  DataNotFoundError, DatasetInfo, clear_cache, describe,
                                  fingerprint, load, subset, train_val_split)
from laperm.data.pipeline import (PIPELINES, ArrayBatches, default_pipeline, epoch_order,
                                  make_dataset)
from laperm.data.preprocess import (AUGMENTATIONS, PREPROCESSORS, Preprocessor,
                                    augmentation_layers, augmented_images,
                                    describe_augmentation, make_preprocessor)

__all__ = [
    "AUGMENTATIONS", "ArrayBatches", "DATASETS", "DATA_DIR_ENV", "DataFormatError",
    "DataNotFoundError", "DatasetInfo", "FULL_TEST_SIZE", "PIPELINES", "PREPROCESSORS",
    "Preprocessor", "augmentation_layers", "augmented_images", "clear_cache", "default_pipeline",
    "describe", "describe_augmentation", "epoch_order", "fingerprint", "load", "make_dataset", "make_preprocessor", "subset",
    "train_val_split",
]
