"""The authors' code, loaded at run time beside ours (never copied).

Finds their two files (:func:`find_authors_code`), executes them in a namespace of
their own with three imports redirected (:data:`SHIMS`), and returns their
functions (:func:`load_authors_code`).  See :mod:`laperm.crosscheck` for the shims.
"""


from __future__ import annotations

import builtins
import contextlib
import dataclasses
import hashlib
import importlib
import os
import sys
import types
from pathlib import Path

import numpy as np

from laperm.project import is_project, project_root

#: Environment variable naming the folder of the authors' code.
ENV_VAR = "LAPERM_AUTHORS_CODE"
#: The authors' repository (MIT licence).
AUTHORS_REPOSITORY = "https://github.com/ihsuy/Train-by-Reconnect"
#: The package folder inside their repository and the files loaded from it.
PACKAGE_FOLDER = "train_by_reconnect"
AUTHORS_FILES = ("LaPerm.py", "weight_utils.py")
#: The sentence that says how to get tf-keras.
INSTALL_HINT = ("pip install 'laperm[crosscheck]' (or pip install tf-keras with the version "
                "of your TensorFlow)")


#: What a reader does to run the cross-check, in one sentence (no local paths).
SETUP_HINT = (f"to run it, install tf-keras ({INSTALL_HINT}) and put a clone of "
              f"{AUTHORS_REPOSITORY} at ../shared/reference/authors-code beside the project, "
              f"or set ${ENV_VAR} to the clone")


class CrossCheckUnavailable(RuntimeError):
    """The authors' code or tf-keras is not available; the message says what to do.

    Attributes:
        reason: what is missing, in a few words without local paths (for a page).
    """

    def __init__(self, message: str, reason: str = "the authors' code is not available"):
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Shim:
    """One import redirected in the namespace the authors' files run in.

    Attributes:
        name: what their file imports.
        replacement: what it gets instead.
        reason: why the original does not work in this environment.
    """

    name: str
    replacement: str
    reason: str


#: Every shim applied when the authors' files are loaded (see the module docstring).
SHIMS: tuple[Shim, ...] = (
    Shim("tensorflow",
         "a view of TensorFlow whose keras, losses, metrics, optimizers and initializers "
         "are tf-keras's",
         "their files use tf.keras, the Keras 2 API; in TensorFlow >= 2.16 tf.keras is "
         "Keras 3 unless TF_USE_LEGACY_KERAS is set before first use, for the whole process"),
    Shim("numpy.cast",
         "numpy with cast[dtype](a) = np.asarray(a).astype(dtype)",
         "np.cast was removed in numpy 2.0; agnosticize and random_prune use it"),
    Shim("tqdm.notebook",
         "tqdm.trange, silent unless authors_progress(True)",
         "tqdm.notebook needs ipywidgets and a notebook front end"),
)


# --------------------------------------------------------------------------
# Loading the authors' files
# --------------------------------------------------------------------------


def _default_directory() -> Path:
    root = project_root(required=False)
    if root is None:
        package_parent = Path(__file__).resolve().parents[2]
        root = package_parent if is_project(package_parent) else Path.cwd()
    return root.parent / "shared" / "reference" / "authors-code"


def find_authors_code(directory: str | os.PathLike | None = None) -> Path:
    """The folder holding the authors' ``LaPerm.py`` and ``weight_utils.py``.

    Args:
        directory: the authors' repository (or its ``train_by_reconnect``
            folder); else ``$LAPERM_AUTHORS_CODE``; else
            ``../shared/reference/authors-code`` beside the project checkout.

    Returns:
        The resolved ``train_by_reconnect`` folder.

    Raises:
        CrossCheckUnavailable: the folder or one of the two files is missing.
    """
    if directory is not None:
        path, where = Path(directory).expanduser(), "the given folder"
    elif os.environ.get(ENV_VAR):
        path, where = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        path, where = _default_directory(), "the default place"
    path = path.resolve()
    if not path.is_dir():
        raise CrossCheckUnavailable(
            f"The authors' code was not found at {path} ({where}): git clone "
            f"{AUTHORS_REPOSITORY} and set ${ENV_VAR} to the clone.",
            reason="the authors' code was not found")
    package = path / PACKAGE_FOLDER if (path / PACKAGE_FOLDER).is_dir() else path
    for name in AUTHORS_FILES:
        if not (package / name).is_file():
            raise CrossCheckUnavailable(
                f"The authors' code at {path} lacks {PACKAGE_FOLDER}/{name}: set ${ENV_VAR} "
                f"to a complete clone of {AUTHORS_REPOSITORY}.",
                reason=f"the authors' code lacks {name}")
    return package


def _import_tf_keras():
    """tf-keras's ``tf.keras`` API module (``tf_keras.api._v2.keras``)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:
        raise CrossCheckUnavailable(
            f"The authors' code needs TensorFlow and tf-keras: {INSTALL_HINT}.",
            reason="TensorFlow is not installed") from exc
    try:
        importlib.import_module("tf_keras")
    except ImportError as exc:
        raise CrossCheckUnavailable(
            f"tf-keras, the Keras 2 API the authors' code needs, is not installed: "
            f"{INSTALL_HINT}.", reason="tf-keras is not installed") from exc
    try:
        return importlib.import_module("tf_keras.api._v2.keras")
    except ImportError:  # pragma: no cover - other tf-keras layouts
        return importlib.import_module("tf_keras")


class _TensorFlowView(types.ModuleType):
    """TensorFlow as the authors' files saw it in TF 2.1: ``tf.keras`` is Keras 2."""

    def __init__(self, tf, keras2):
        super().__init__("tensorflow", "TensorFlow with tf.keras = tf-keras (crosscheck shim)")
        self.__dict__["_real"] = tf
        self.__dict__["keras"] = keras2
        for alias in ("losses", "metrics", "optimizers", "initializers"):
            self.__dict__[alias] = getattr(keras2, alias)

    def __getattr__(self, name):
        return getattr(self.__dict__["_real"], name)


class _Cast:
    """numpy 1's ``np.cast``: ``cast[dtype](a)`` converts ``a`` to ``dtype``."""

    def __getitem__(self, dtype):
        return lambda a: np.asarray(a).astype(dtype)


class _NumpyView(types.ModuleType):
    """numpy with ``np.cast`` (removed in numpy 2.0)."""

    def __init__(self):
        super().__init__("numpy", "numpy with np.cast (crosscheck shim)")
        self.__dict__["cast"] = _Cast()

    def __getattr__(self, name):
        return getattr(np, name)


_PROGRESS = {"on": False}


@contextlib.contextmanager
def authors_progress(on: bool = True):
    """Show (or hide) the progress bars of the authors' training loop."""
    before = _PROGRESS["on"]
    _PROGRESS["on"] = bool(on)
    try:
        yield
    finally:
        _PROGRESS["on"] = before


def _trange(*args, **kwargs):
    from tqdm import trange

    kwargs.setdefault("disable", not _PROGRESS["on"])
    kwargs.pop("ncols", None)
    return trange(*args, **kwargs)


def _shimmed_builtins(tf_view, np_view, notebook):
    mapping = {"tensorflow": tf_view, "numpy": np_view, "tqdm.notebook": notebook}
    real_import = builtins.__import__

    def shimmed_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name in mapping:
            return mapping[name]
        return real_import(name, globals, locals, fromlist, level)

    namespace = dict(vars(builtins))
    namespace["__import__"] = shimmed_import
    return namespace


@dataclasses.dataclass(frozen=True)
class AuthorsCode:
    """The authors' modules, loaded with the shims.

    Attributes:
        directory: their ``train_by_reconnect`` folder.
        LaPerm: their ``LaPerm.py`` (``LaPerm``, ``LaPermTrainLoop``).
        weight_utils: their ``weight_utils.py`` (``agnosticize``, ``random_prune``).
        keras: tf-keras, i.e. their ``tf.keras``.
        sha256: sha256 of each loaded file.
    """

    directory: Path
    LaPerm: types.ModuleType
    weight_utils: types.ModuleType
    keras: types.ModuleType
    sha256: dict

    def describe(self) -> dict:
        """A JSON-able note of where the code came from and the shims applied."""
        return {"directory": str(self.directory), "sha256": dict(self.sha256),
                "repository": AUTHORS_REPOSITORY, "tf_keras": _tf_keras_version(),
                "shims": [dataclasses.asdict(s) for s in SHIMS]}


_LOADED: dict[Path, AuthorsCode] = {}


def _tf_keras_version() -> str:
    try:
        return importlib.import_module("tf_keras").__version__
    except ImportError:  # pragma: no cover
        return "not installed"


def load_authors_code(directory: str | os.PathLike | None = None) -> AuthorsCode:
    """Load the authors' ``LaPerm.py`` and ``weight_utils.py`` with the shims.

    Args:
        directory: see :func:`find_authors_code`.

    Returns:
        An :class:`AuthorsCode` (cached per folder).

    Raises:
        CrossCheckUnavailable: tf-keras, the folder or a file is missing.
    """
    keras2 = _import_tf_keras()
    package = find_authors_code(directory)
    if package in _LOADED:
        return _LOADED[package]
    import tensorflow as tf

    notebook = types.ModuleType("tqdm.notebook", "tqdm's plain trange (crosscheck shim)")
    notebook.trange = _trange
    namespace = _shimmed_builtins(_TensorFlowView(tf, keras2), _NumpyView(), notebook)
    modules, digests = {}, {}
    prefix = "_laperm_authors_" + hashlib.sha256(str(package).encode()).hexdigest()[:8]
    for filename in AUTHORS_FILES:
        path = package / filename
        source = path.read_bytes()
        digests[filename] = hashlib.sha256(source).hexdigest()
        module = types.ModuleType(f"{prefix}.{path.stem}")
        module.__file__ = str(path)
        module.__builtins__ = namespace
        sys.modules[module.__name__] = module
        exec(compile(source, str(path), "exec"), module.__dict__)
        modules[path.stem] = module
    code = AuthorsCode(package, modules["LaPerm"], modules["weight_utils"], keras2, digests)
    _LOADED[package] = code
    return code


def load_or_explain(directory: str | os.PathLike | None = None
                    ) -> tuple[AuthorsCode | None, str]:
    """:func:`load_authors_code`, or None and one sentence for a page saying why not.

    Returns:
        ``(code, "")`` when the authors' code loads; ``(None, note)`` otherwise,
        where ``note`` (Markdown) gives :attr:`CrossCheckUnavailable.reason` and
        :data:`SETUP_HINT`.
    """
    try:
        return load_authors_code(directory), ""
    except CrossCheckUnavailable as exc:
        return None, f"**Not executed in this build:** {exc.reason}; {SETUP_HINT}."
