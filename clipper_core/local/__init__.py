"""The embedded default container manager: a Clipper cluster made of local processes under one supervisor.

``LocalContainerManager`` (:mod:`.manager`) writes the cluster's state and starts the detached supervisor
(:mod:`.supervisor`), which owns Redis (:mod:`.redis_server`), both frontends and every model replica. It registers
through :mod:`.hooks`, the same way a plugin's manager does.
"""

from __future__ import annotations

from clipper_core.local.manager import LocalContainerManager

__all__ = ["LocalContainerManager"]
