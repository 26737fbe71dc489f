"""``python -m laperm.crosscheck``: see :mod:`laperm.crosscheck.cli`."""

from laperm.crosscheck.cli import main

raise SystemExit(main())
