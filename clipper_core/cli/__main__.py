"""``python -m clipper_core.cli``: the ``clipper`` command."""

from __future__ import annotations

import sys

from clipper_core.cli import main

sys.exit(main())
