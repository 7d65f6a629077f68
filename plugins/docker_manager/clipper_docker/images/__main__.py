"""``python -m clipper_docker.images build``."""

from __future__ import annotations

import sys

from clipper_docker.images.cli import main

sys.exit(main())
