"""The weights trained by this project (importable as ``laperm._pretrained``, so that
``importlib.resources`` finds them in a wheel and in an editable install alike)."""
