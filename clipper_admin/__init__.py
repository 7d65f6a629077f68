"""Compatibility import path: ``from clipper_admin import ClipperConnection, DockerContainerManager`` keeps working.

``LocalContainerManager`` comes from ``clipper_core.local``; ``DockerContainerManager`` and
``KubernetesContainerManager`` come from the optional plugins ``clipper-docker`` and ``clipper-kubernetes`` and are
imported only when first used, so this package imports without them. ``__all__`` names only what always imports,
so ``from clipper_admin import *`` works whatever is installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from clipper_admin import deployers
from clipper_core import __version__
from clipper_core.admin import (
    CLIPPER_TEMP_DIR,
    DEFAULT_LABEL,
    DEFAULT_PREDICTION_CACHE_SIZE_BYTES,
    ClipperConnection,
)
from clipper_core.container_manager import clipper_registry
from clipper_core.errors import ClipperException, UnconnectedException

__registry__ = clipper_registry()

# name -> (module, distribution to pip install, or None for clipper-core itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "LocalContainerManager": ("clipper_core.local", None),
    "DockerContainerManager": ("clipper_docker", "clipper-docker"),
    "KubernetesContainerManager": ("clipper_k8s", "clipper-kubernetes"),
}

__all__ = [
    "CLIPPER_TEMP_DIR",
    "DEFAULT_LABEL",
    "DEFAULT_PREDICTION_CACHE_SIZE_BYTES",
    "ClipperConnection",
    "ClipperException",
    "LocalContainerManager",
    "UnconnectedException",
    "__registry__",
    "__version__",
    "deployers",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    modname, dist = _LAZY[name]
    try:
        module = importlib.import_module(modname)
    except ImportError as exc:
        if dist is None or (exc.name is not None and exc.name != modname):
            raise  # a broken install of an available module: don't hide the real cause
        msg = f"{name} needs the optional plugin {dist!r}: pip install {dist}"
        raise ImportError(msg, name=modname) from exc
    value = getattr(module, name, None)
    if value is None:  # plugins may keep the class in a ``manager`` submodule
        try:
            value = getattr(importlib.import_module(f"{modname}.manager"), name)
        except (ImportError, AttributeError) as exc:
            msg = f"{modname} does not provide {name}"
            raise ImportError(msg, name=modname) from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
