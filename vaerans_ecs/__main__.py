"""``python -m vaerans_ecs`` is the ``vaerans`` command line."""

from __future__ import annotations

import sys

from vaerans_ecs.cli import main

if __name__ == "__main__":
    sys.exit(main())
