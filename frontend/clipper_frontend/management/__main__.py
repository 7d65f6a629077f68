"""``python -m clipper_frontend.management``: run the management frontend."""

from __future__ import annotations

import sys

from clipper_frontend.management.app import main

sys.exit(main())
