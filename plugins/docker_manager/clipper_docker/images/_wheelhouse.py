"""The wheelhouse the images install from: the project's wheels (see :mod:`._project_wheels`) in ``clipper/`` and
every third-party dependency in ``deps/``, fetched on the host with ``pip wheel`` and cached.

The cache lives in ``<cache>/wheelhouse/py<X.Y>/``. While the project's wheels are byte-identical to those of the
last run nothing is fetched; otherwise the dependencies are resolved again, first from the cache alone
(``--no-index``), then from the package index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from clipper_core.errors import DeploymentError
from clipper_docker.images._project_wheels import pip_wheel, project_wheels, wheel_prefix

logger = logging.getLogger(__name__)

EXTRA_WHEELS = (
    "pip",  # images upgrade the base image's pip from the wheelhouse
    "async-timeout>=4.0.3",  # redis needs it on Python < 3.11.3 (Debian bookworm has 3.11.2); the host may not
)


def user_wheelhouse(explicit: Path | None) -> Path | None:
    """``--wheelhouse DIR``, else ``$CLIPPER_WHEELHOUSE``, else None; the directory must exist."""
    chosen = explicit or (Path(os.environ["CLIPPER_WHEELHOUSE"]) if os.environ.get("CLIPPER_WHEELHOUSE") else None)
    if chosen is not None and not chosen.is_dir():
        msg = f"The wheelhouse {chosen} (--wheelhouse / CLIPPER_WHEELHOUSE) is not a directory"
        raise DeploymentError(msg)
    return chosen


def wheel_digest(paths: list[Path]) -> str:
    """Hash of the names and bytes of ``paths``, in name order."""
    digest = hashlib.sha256()
    for f in sorted(paths, key=lambda p: p.name):
        digest.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()


def resolve_wheels(
    requirements: list[str],
    cached: Path,
    out: Path,
    find_links: list[Path],
    what: str,
    say: Callable[[str], None],
) -> None:
    """``pip wheel`` ``requirements`` and everything they need into ``out``: from ``cached`` and ``find_links``
    alone when they hold it all, else also from the package index."""
    links = [arg for d in (cached, *find_links) if d.is_dir() for arg in ("--find-links", str(d))]
    args = ["-w", str(out), *links, *requirements]
    if cached.is_dir():
        try:
            pip_wheel(["--no-index", *args], f"collecting {what} from the cache")
            return
        except DeploymentError as exc:
            logger.debug("the cached wheels do not cover %s: %s", what, exc)
    say(f"fetching {what} (pip wheel; cached afterwards)")
    pip_wheel(args, f"fetching {what}")


def ensure_wheelhouse(
    cache_dir: Path,
    dists: list[str],
    version: str,
    say: Callable[[str], None],
    wheelhouse: Path | None = None,
    force: bool = False,
) -> Path:
    """Return ``<cache>/wheelhouse/py<X.Y>/`` holding ``clipper/`` (the wheels of ``dists``) and ``deps/``."""
    root = cache_dir / "wheelhouse" / f"py{sys.version_info[0]}.{sys.version_info[1]}"
    root.mkdir(parents=True, exist_ok=True)
    stamp = root / "inputs.json"
    with tempfile.TemporaryDirectory(prefix="clipper-wheels-", dir=root) as tmp:
        fresh = Path(tmp) / "clipper"
        wheels = project_wheels(dists, fresh, say, wheelhouse, version)
        key = hashlib.sha256(f"{wheel_digest(wheels)} {EXTRA_WHEELS}".encode()).hexdigest()
        try:
            unchanged = json.loads(stamp.read_text()).get("inputs") == key
        except (OSError, ValueError):
            unchanged = False
        if unchanged and not force and (root / "deps").is_dir():
            say(f"wheelhouse {root} is up to date")
            return root
        resolved = Path(tmp) / "resolved"
        requirements = [*(str(w) for w in wheels), *EXTRA_WHEELS]
        links = [wheelhouse] if wheelhouse else []
        resolve_wheels(requirements, root / "deps", resolved, links, "the dependencies' wheels", say)
        ours = tuple(f"{wheel_prefix(d)}-" for d in dists)
        deps = Path(tmp) / "deps"
        deps.mkdir()
        for whl in resolved.glob("*.whl"):
            if not whl.name.startswith(ours):
                os.replace(whl, deps / whl.name)
        for sub, new in (("clipper", fresh), ("deps", deps)):
            shutil.rmtree(root / sub, ignore_errors=True)
            os.replace(new, root / sub)
    stamp.write_text(json.dumps({"inputs": key, "dists": dists}))
    say(f"wheelhouse ready: {len(wheels)} project wheels, {len(list((root / 'deps').glob('*.whl')))} dependencies")
    return root


def wheelhouse_digest(root: Path) -> str:
    """Hash of the wheel files themselves (names and bytes)."""
    return wheel_digest([*root.glob("clipper/*.whl"), *root.glob("deps/*.whl")])
