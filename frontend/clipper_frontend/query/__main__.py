"""``python -m clipper_frontend.query``: run the query frontend."""

from __future__ import annotations

from clipper_frontend.query.app import main

main()
