"""Base images made without any image registry: ``debootstrap`` a Debian rootfs, then ``docker import`` it.

Two flavours: Python alone (:data:`PYTHON`, the base of every image) and Python with a Java runtime (:data:`JAVA`,
the base of ``pyspark-container``). Each rootfs tarball is cached under the cache directory and the imported image
is reused while it exists.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from clipper_core.errors import DeploymentError

logger = logging.getLogger(__name__)

SUITE = "bookworm"  # its python3 is 3.11, the version the client pickles closures with
PACKAGES = ("python3", "python3-pip", "python3-venv", "ca-certificates")
#: The Java runtime PySpark replicas start (bookworm's OpenJDK 17, the release Spark 3.5 and 4 support).
JAVA_PACKAGES = ("openjdk-17-jre-headless",)
DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Flavour:
    """One debootstrap base image: its tag, the packages it includes and its cached tarball's name."""

    tag: str
    packages: tuple[str, ...]
    tarball: str
    #: roughly how long debootstrap takes, for the progress line
    duration: str


PYTHON = Flavour(f"clipper/debian-python3:{SUITE}", PACKAGES, f"rootfs-{SUITE}-python3.tar", "about a minute")
JAVA = Flavour(
    f"clipper/debian-python3-java:{SUITE}",
    PACKAGES + JAVA_PACKAGES,
    f"rootfs-{SUITE}-python3-java.tar",
    "a few minutes",
)
BASE_TAG = PYTHON.tag
IMPORT_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
]


_MIRROR_SCHEMES = ("http://", "https://", "file:/")  # what debootstrap can fetch from
_ONE_LINE = re.compile(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)(.*)$")


def _one_line_entries(text: str) -> list[tuple[list[str], list[str], list[str]]]:
    """``(uris, suites, components)`` of the ``deb`` lines of a one-line-style ``.list`` file."""
    entries = []
    for line in text.splitlines():
        m = _ONE_LINE.match(line.split("#", 1)[0].strip())
        if m:
            entries.append(([m.group(1)], [m.group(2)], m.group(3).split()))
    return entries


def _deb822_entries(text: str) -> list[tuple[list[str], list[str], list[str]]]:
    """``(uris, suites, components)`` of the enabled ``Types: deb`` stanzas of a deb822 ``.sources`` file."""
    stanzas: list[dict[str, str]] = [{}]
    key = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanzas[-1]:
                stanzas.append({})
            key = None
        elif line[0].isspace() and key is not None:  # a continuation line
            stanzas[-1][key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            stanzas[-1][key] = value.strip()
    entries = []
    for st in stanzas:
        if "deb" not in st.get("types", "").split() or st.get("enabled", "yes").strip().lower() == "no":
            continue
        entries.append((st.get("uris", "").split(), st.get("suites", "").split(), st.get("components", "").split()))
    return entries


def configured_mirror(etc_apt: Path = Path("/etc/apt"), suite: str = SUITE) -> str | None:
    """The first URI apt on this host fetches ``suite``'s ``main`` component from, whatever its path; else None.

    Reads ``sources.list`` and then ``sources.list.d/*.list`` and ``*.sources`` (deb822) in apt's order; only
    ``deb`` entries with an http(s) or file URI count.
    """
    files = [etc_apt / "sources.list"]
    parts = etc_apt / "sources.list.d"
    files += sorted((*parts.glob("*.list"), *parts.glob("*.sources")), key=lambda f: f.name)
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        entries = _deb822_entries(text) if path.suffix == ".sources" else _one_line_entries(text)
        for uris, suites, components in entries:
            if suite not in suites or "main" not in components:
                continue
            for uri in uris:
                if uri.startswith(_MIRROR_SCHEMES):
                    return uri.rstrip("/")
    return None


def apt_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The mirror this host's apt uses for Debian bookworm main (see :func:`configured_mirror`), else deb.debian.org."""
    return configured_mirror(etc_apt) or DEFAULT_MIRROR


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1] for line in lines if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _safe_rmtree(root: Path) -> None:
    """Remove a debootstrap target, unmounting /proc, /sys etc. a failed run may have left mounted inside it."""
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], check=False)
    if _mounts_under(root):
        msg = f"{root} still has mounts inside; not removing it"
        raise DeploymentError(msg)
    shutil.rmtree(root, ignore_errors=True)


def make_rootfs_tarball(
    tarball: Path, say: Callable[[str], None], mirror: str | None = None, flavour: Flavour = PYTHON
) -> None:
    """debootstrap a minimal Debian with ``flavour``'s packages into a temporary directory, tar it into ``tarball``."""
    if shutil.which("debootstrap") is None:
        msg = "debootstrap is not installed: `sudo apt-get install -y debootstrap` (or pass --base-image IMAGE)"
        raise DeploymentError(msg)
    if os.geteuid() != 0:
        msg = "debootstrap needs root: run `clipper images build` as root (or pass --base-image IMAGE)"
        raise DeploymentError(msg)
    mirror = mirror or apt_mirror()
    tarball.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="clipper-rootfs-", dir=tarball.parent))
    target = work / "rootfs"
    include = ",".join(flavour.packages)
    cmd = ["debootstrap", "--variant=minbase", f"--include={include}", SUITE, str(target), mirror]
    say(f"debootstrap {SUITE} from {mirror} ({flavour.duration}): {' '.join(cmd)}")
    log = work / "debootstrap.log"
    try:
        with open(log, "wb") as out:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            msg = f"debootstrap failed with exit code {proc.returncode}:\n{tail}"
            raise DeploymentError(msg)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (target / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = tarball.with_suffix(".tar.partial")
        say(f"packing the rootfs into {tarball}")
        subprocess.run(["tar", "--numeric-owner", "-C", str(target), "-cf", str(partial), "."], check=True)
        os.replace(partial, tarball)
    finally:
        _safe_rmtree(work)


def ensure_base_image(
    client: docker.DockerClient,
    cache_dir: Path,
    say: Callable[[str], None],
    flavour: Flavour = PYTHON,
    rebuild: bool = False,
) -> str:
    """Return ``flavour.tag``, importing the cached (or freshly debootstrapped) rootfs tarball unless the image
    exists."""
    tag = flavour.tag
    if not rebuild:
        try:
            image = client.images.get(tag)
            say(f"base image {tag} is present ({image.short_id}); reusing it")
            return tag
        except docker.errors.ImageNotFound:
            pass
    tarball = cache_dir / flavour.tarball
    if rebuild or not tarball.is_file():
        make_rootfs_tarball(tarball, say, flavour=flavour)
    else:
        say(f"reusing the cached rootfs {tarball}")
    repo, _, version = tag.rpartition(":")
    say(f"docker import {tarball} -> {tag}")
    try:
        client.api.import_image_from_file(str(tarball), repository=repo, tag=version, changes=IMPORT_CHANGES)
        client.images.get(tag)
    except docker.errors.DockerException as exc:
        msg = f"Importing {tarball} as {tag} failed: {exc}"
        raise DeploymentError(msg) from exc
    return tag
