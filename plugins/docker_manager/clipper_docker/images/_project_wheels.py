"""The project's own wheels for the images, taken from what is installed on the host or from a named wheelhouse.

* ``--wheelhouse DIR`` (or ``CLIPPER_WHEELHOUSE``): the wheels of ``clipper-core``/``clipper-frontend`` found there.
* Otherwise the installed distributions: one installed from a wheel is re-packed from its installed files (its
  ``RECORD``); an editable install (PEP 610 ``direct_url.json`` with ``"editable": true``) is built with ``pip wheel``
  from the project directory recorded there.

Wheels are written with fixed timestamps, so the same files give byte-identical wheels and Docker's layer cache stays
valid.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata as md
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from clipper_core.errors import DeploymentError

logger = logging.getLogger(__name__)

#: 1980-01-01, the earliest time a zip entry can carry.
SOURCE_DATE_EPOCH = "315532800"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
PIP_TIMEOUT = 1800
#: Files of an installed ``.dist-info`` that the installer wrote (not part of the wheel).
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "RECORD.jws", "RECORD.p7s"}
#: Not copied when a project directory is built (stale build output, other projects' virtualenvs, VCS data).
_IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache"
)


def wheel_prefix(dist: str) -> str:
    """The distribution part of a wheel's file name (``clipper-core`` -> ``clipper_core``)."""
    return re.sub(r"[-_.]+", "_", dist).lower()


def _not_installed(dist: str) -> DeploymentError:
    msg = (
        f"{dist} is not installed on this host, and the images install it from the installed distribution: "
        f"`pip install {dist}`, or pass --wheelhouse DIR (CLIPPER_WHEELHOUSE) with a {wheel_prefix(dist)}-*.whl"
    )
    return DeploymentError(msg)


def installed_distribution(dist: str) -> md.Distribution:
    """The installed ``dist``: the first ``.dist-info`` on ``sys.path`` (an ``.egg-info`` that a source tree on
    ``sys.path`` holds is build output, not an installation).

    :raises DeploymentError: naming the distribution when it is not installed.
    """
    found = list(md.distributions(name=dist))
    for candidate in found:
        if candidate.read_text("RECORD") is not None:
            return candidate
    if found:
        msg = f"{dist} is only present as build output (no .dist-info with a RECORD); install it with pip"
        raise DeploymentError(msg)
    raise _not_installed(dist)


def editable_project_dir(dist: md.Distribution) -> Path | None:
    """The project directory of an editable install (from its PEP 610 ``direct_url.json``), else None."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return None
    url = str(info.get("url", ""))
    if not (info.get("dir_info") or {}).get("editable") or not url.startswith("file:"):
        return None
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack_installed(dist: md.Distribution, dest: Path) -> Path:
    """A wheel of ``dist`` made from its installed files (as listed in its ``RECORD``), in ``dest``."""
    files = dist.files
    if not files:
        msg = f"{dist.metadata['Name']} {dist.version} has no RECORD of its installed files; reinstall it with pip"
        raise DeploymentError(msg)
    entries: dict[str, bytes] = {}
    for rel in files:
        parts = rel.parts
        if not parts or parts[0] == ".." or "__pycache__" in parts or rel.suffix == ".pyc":
            continue  # console scripts (recreated from entry_points.txt on install) and byte code
        if parts[0].endswith(".dist-info") and len(parts) == 2 and parts[1] in _INSTALLER_FILES:
            continue
        path = Path(str(dist.locate_file(rel)))
        try:
            entries[rel.as_posix()] = path.read_bytes()
        except OSError as exc:
            msg = f"Cannot read {path} of the installed {dist.metadata['Name']}: {exc}; reinstall it with pip"
            raise DeploymentError(msg) from exc
    info_dirs = {name.split("/", 1)[0] for name in entries if name.split("/", 1)[0].endswith(".dist-info")}
    if len(info_dirs) != 1:
        msg = f"{dist.metadata['Name']} {dist.version}: expected one .dist-info directory, found {sorted(info_dirs)}"
        raise DeploymentError(msg)
    (info_dir,) = info_dirs
    wheel_meta = entries.get(f"{info_dir}/WHEEL", b"").decode()
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    if not tags:
        msg = f"{dist.metadata['Name']} {dist.version} was not installed from a wheel (no {info_dir}/WHEEL tags)"
        raise DeploymentError(msg)
    interpreters, abis, platforms = (sorted({t.split("-")[i] for t in tags}) for i in range(3))
    tag = "-".join(".".join(group) for group in (interpreters, abis, platforms))
    target = dest / f"{wheel_prefix(str(dist.metadata['Name']))}-{dist.version}-{tag}.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as whl:
        for name in sorted(entries, key=lambda n: (n.startswith(info_dir + "/"), n)):  # .dist-info last
            data = entries[name]
            _write(whl, name, data)
            writer.writerow([name, _record_hash(data), len(data)])
        writer.writerow([f"{info_dir}/RECORD", "", ""])
        _write(whl, f"{info_dir}/RECORD", record.getvalue().encode())
    return target


def _write(whl: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    whl.writestr(info, data)


def _setuptools_builds_wheels() -> bool:
    """setuptools >= 70.1 (bdist_wheel built in, no ``wheel`` package needed) is importable here."""
    try:
        version = md.version("setuptools")
    except md.PackageNotFoundError:
        return False
    numbers = [int(n) for n in re.findall(r"\d+", version)[:2]] + [0]
    return (numbers[0], numbers[1]) >= (70, 1)


def pip_wheel(args: list[str], what: str) -> None:
    """``python -m pip wheel ARGS`` with reproducible timestamps; raises :class:`DeploymentError` on failure."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-input", *args]
    env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        msg = f"{what} timed out after {PIP_TIMEOUT} s"
        raise DeploymentError(msg) from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        msg = f"{what} failed (pip wheel exit code {proc.returncode}):\n{tail}"
        raise DeploymentError(msg)


def build_from_project(project: Path, dest: Path, say: Callable[[str], None]) -> Path:
    """``pip wheel --no-deps`` of a copy of ``project`` (without build output or virtualenvs) into ``dest``."""
    if not (project / "pyproject.toml").is_file() and not (project / "setup.py").is_file():
        msg = f"The editable install's project directory {project} has no pyproject.toml; reinstall it"
        raise DeploymentError(msg)
    with tempfile.TemporaryDirectory(prefix="clipper-wheel-src-") as tmp:
        src = Path(tmp) / project.name
        shutil.copytree(project, src, ignore=_IGNORE, symlinks=True)
        out = Path(tmp) / "out"
        # Without isolation pip uses this environment's setuptools; it needs no `wheel` package from 70.1 on.
        isolation = ["--no-build-isolation"] if _setuptools_builds_wheels() else []
        say(f"building a wheel from the editable project {project}")
        pip_wheel(["--no-deps", *isolation, "-w", str(out), str(src)], f"building a wheel from {project}")
        (built,) = out.glob("*.whl")
        target = dest / built.name
        shutil.move(str(built), target)
    return target


def from_wheelhouse(dist: str, wheelhouse: Path, version: str) -> Path:
    """The wheel of ``dist`` in ``wheelhouse``: the one of ``version`` if present, else the only one there."""
    found = sorted(wheelhouse.glob(f"{wheel_prefix(dist)}-*.whl"))
    exact = [w for w in found if w.name.split("-")[1] == version]
    if exact or len(found) == 1:
        return (exact or found)[0]
    if not found:
        msg = f"The wheelhouse {wheelhouse} has no wheel of {dist} ({wheel_prefix(dist)}-*.whl)"
    else:
        msg = f"The wheelhouse {wheelhouse} has several wheels of {dist} and none of version {version}: " + ", ".join(
            w.name for w in found
        )
    raise DeploymentError(msg)


def project_wheels(
    dists: list[str], dest: Path, say: Callable[[str], None], wheelhouse: Path | None, version: str
) -> list[Path]:
    """The wheels of ``dists`` in ``dest``: from ``wheelhouse`` when given, else from the installed distributions."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for dist in dists:
        if wheelhouse is not None:
            source = from_wheelhouse(dist, wheelhouse, version)
            say(f"{dist}: {source}")
            target = dest / source.name
            shutil.copy2(source, target)
            out.append(target)
            continue
        installed = installed_distribution(dist)
        project = editable_project_dir(installed)
        if project is not None:
            out.append(build_from_project(project, dest, say))
        else:
            say(f"{dist}: re-packing the installed {dist} {installed.version}")
            out.append(repack_installed(installed, dest))
    return out
