"""The wheelhouse the images install from: the project's packages and all their dependencies, built on the host.

Sources are copied out of the tree first (so no ``build/`` or ``*.egg-info`` lands in it) and wheels are built with a
fixed ``SOURCE_DATE_EPOCH`` so that unchanged sources give byte-identical wheels, which keeps Docker's layer cache
valid. The result is skipped entirely while the hash of the inputs is unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from clipper_core.errors import ClipperException

logger = logging.getLogger(__name__)

#: (directory relative to the source tree, files/folders it needs to build its wheel)
PROJECT_PACKAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (".", ("pyproject.toml", "README.md", "clipper_core", "clipper_admin")),
    ("frontend", ("pyproject.toml", "clipper_frontend")),
)
DIST_NAMES = ("clipper-core", "clipper-frontend")
EXTRA_WHEELS = (
    "pip",  # images upgrade the base image's pip from the wheelhouse
    "async-timeout>=4.0.3",  # redis needs it on Python < 3.11.3 (Debian bookworm has 3.11.2); the host may not
)
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".pytest_cache")
PIP_TIMEOUT = 1800


def find_source_tree() -> Path | None:
    """The Clipper source checkout this package runs from (editable install), if any."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "clipper_core").is_dir() and (parent / "frontend" / "clipper_frontend").is_dir():
            return parent
    return None


def _iter_files(root: Path, names: tuple[str, ...]) -> list[Path]:
    out: list[Path] = []
    for name in names:
        path = root / name
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            for f in sorted(path.rglob("*")):
                parts = set(f.relative_to(root).parts)
                if (
                    f.is_file()
                    and f.suffix != ".pyc"
                    and "__pycache__" not in parts
                    and not any(p.endswith(".egg-info") for p in parts)
                ):
                    out.append(f)
    return out


def sources_hash(tree: Path) -> str:
    digest = hashlib.sha256()
    for sub, names in PROJECT_PACKAGES:
        root = tree / sub
        for f in _iter_files(root, names):
            digest.update(str(f.relative_to(tree)).encode() + b"\0" + f.read_bytes() + b"\0")
    digest.update(f"{sys.version_info[:2]} {EXTRA_WHEELS}".encode())
    return digest.hexdigest()


def _pip_wheel(args: list[str], what: str) -> None:
    cmd = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-input", *args]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        msg = f"{what} timed out"
        raise ClipperException(msg) from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        msg = f"{what} failed (pip wheel exit code {proc.returncode}):\n{tail}"
        raise ClipperException(msg)


def ensure_wheelhouse(
    cache_dir: Path, version: str, say: Callable[[str], None], tree: Path | None = None, force: bool = False
) -> tuple[Path, str]:
    """Build (or reuse) ``<cache>/wheelhouse-<version>/``; returns its path and the hash of its inputs."""
    tree = tree or find_source_tree()
    wheels = cache_dir / f"wheelhouse-{version}"
    stamp = wheels / ".inputs.json"
    key = sources_hash(tree) if tree else f"pypi:{version}:{sys.version_info[:2]}:{EXTRA_WHEELS}"
    if not force and stamp.is_file():
        try:
            if json.loads(stamp.read_text()).get("inputs") == key:
                say(f"wheelhouse {wheels} is up to date")
                return wheels, key
        except (OSError, ValueError):
            pass
    wheels.mkdir(parents=True, exist_ok=True)
    for old in wheels.glob("clipper_*.whl"):
        old.unlink()
    no_isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    if tree is None:
        say(f"building the wheelhouse {wheels} from the package index (clipper-core/-frontend {version})")
        _pip_wheel(["-w", str(wheels), *(f"{d}=={version}" for d in DIST_NAMES), *EXTRA_WHEELS], "pip wheel")
    else:
        with tempfile.TemporaryDirectory(prefix="clipper-wheel-src-") as tmp:
            targets = []
            for sub, names in PROJECT_PACKAGES:
                dest = Path(tmp, sub.replace(".", "core"))
                dest.mkdir(parents=True)
                for name in names:
                    src = tree / sub / name
                    if src.is_dir():
                        shutil.copytree(src, dest / name, ignore=_IGNORE)
                    elif src.is_file():
                        shutil.copy2(src, dest / name)
                targets.append(str(dest))
            say(f"building the wheelhouse {wheels} from {tree} (pip wheel, with all dependencies)")
            _pip_wheel(
                ["-w", str(wheels), "--find-links", str(wheels), *no_isolation, *targets, *EXTRA_WHEELS],
                "building the project's wheels",
            )
    count = len(list(wheels.glob("*.whl")))
    stamp.write_text(json.dumps({"inputs": key, "version": version}))
    say(f"wheelhouse ready: {count} wheels")
    return wheels, key


def wheelhouse_digest(wheels: Path) -> str:
    """Hash of the wheel files themselves (names and bytes)."""
    digest = hashlib.sha256()
    for f in sorted(wheels.glob("*.whl")):
        digest.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()
