"""``python -m vaerans_ecs.eval --data DIR --out DIR [...]``."""

from vaerans_ecs.eval.cli import main

raise SystemExit(main())
