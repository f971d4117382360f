"""``python3 -m parallux CONFIG``."""

from ._cli import main

raise SystemExit(main())
