"""``python -m hotreload``: the ``hotreload`` command."""

from .cli import main

raise SystemExit(main())
