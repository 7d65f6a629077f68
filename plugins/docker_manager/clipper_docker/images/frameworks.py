"""The framework model images (``pyspark-container``, ``pytorch-container``, ``onnx-container``) and their wheels.

Each is the Python closure image plus ``clipper-deployers`` (whose replica-side modules load the saved model) and
the framework the replica imports. The framework is pinned to the release installed on the building host when
there is one, so that a model saved here loads in the image (Spark's and torch's saved formats follow their
release), else to the requirement of the ``clipper-deployers`` extra.

Their wheels live beside the shared wheelhouse, in ``<wheelhouse>/frameworks/<extra>/``: ``clipper-deployers`` and
every dependency that the shared ``deps/`` does not already hold, so that the other images never carry them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clipper_docker.images._project_wheels import project_wheels, wheel_prefix
from clipper_docker.images._wheelhouse import resolve_wheels, wheel_digest, wheelhouse_digest

logger = logging.getLogger(__name__)

DEPLOYERS_DIST = "clipper-deployers"


@dataclass(frozen=True)
class FrameworkImage:
    """A framework model image: its name, the ``clipper-deployers`` extra it serves and what its replicas import."""

    name: str
    extra: str
    #: distributions the replica imports, pinned to the host's release when installed
    packages: tuple[str, ...]
    #: built on the base image with a Java runtime (``--java-base-image``)
    java: bool = False

    def requirements(self) -> list[str]:
        """``pkg==<installed version>`` for each package installed here, else the extra's requirement for it."""
        return [_requirement(pkg, self.extra) for pkg in self.packages]


FRAMEWORK_IMAGES: dict[str, FrameworkImage] = {
    fw.name: fw
    for fw in (
        # pyspark.ml imports numpy, which pyspark itself does not require
        FrameworkImage("pyspark-container", "pyspark", ("pyspark", "numpy"), java=True),
        FrameworkImage("pytorch-container", "torch", ("torch",)),
        FrameworkImage("onnx-container", "onnx", ("onnxruntime",)),
    )
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extra_requirement(pkg: str, extra: str) -> str | None:
    """The requirement on ``pkg`` that ``clipper-deployers[extra]`` declares, if clipper-deployers is installed."""
    try:
        declared = md.requires(DEPLOYERS_DIST) or []
    except md.PackageNotFoundError:
        return None
    for line in declared:
        spec, _, marker = line.partition(";")
        name = re.split(r"[\s<>=!~\[;(]", spec.strip(), maxsplit=1)[0]
        if _canonical(name) == _canonical(pkg) and re.search(rf"extra\s*==\s*['\"]{re.escape(extra)}['\"]", marker):
            return spec.strip()
    return None


def _requirement(pkg: str, extra: str) -> str:
    try:
        return f"{pkg}=={md.version(pkg)}"
    except md.PackageNotFoundError:
        return _extra_requirement(pkg, extra) or pkg


def ensure_framework_wheels(
    root: Path,
    fw: FrameworkImage,
    version: str,
    say: Callable[[str], None],
    wheelhouse: Path | None = None,
    force: bool = False,
) -> Path:
    """Return ``<root>/frameworks/<extra>/`` for ``fw``: the ``clipper-deployers`` wheel and the framework's wheels
    missing from ``<root>/deps``. ``root`` is the shared wheelhouse made by
    :func:`clipper_docker.images._wheelhouse.ensure_wheelhouse`.

    :raises DeploymentError: clipper-deployers is not installed (and not in ``wheelhouse``), or pip cannot get a
        wheel of the framework.
    """
    target = root / "frameworks" / fw.extra
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = target.parent / f"{fw.extra}.json"
    requirements = fw.requirements()
    with tempfile.TemporaryDirectory(prefix=f"clipper-{fw.extra}-wheels-", dir=target.parent) as tmp:
        fresh = Path(tmp) / "out"
        (deployers,) = project_wheels([DEPLOYERS_DIST], fresh, say, wheelhouse, version)
        shared = [*root.glob("clipper/*.whl"), *root.glob("deps/*.whl")]
        key = hashlib.sha256(f"{wheel_digest([deployers])} {wheelhouse_digest(root)} {requirements}".encode())
        key = key.hexdigest()
        try:
            unchanged = json.loads(stamp.read_text()).get("inputs") == key
        except (OSError, ValueError):
            unchanged = False
        if unchanged and not force and target.is_dir():
            say(f"{fw.name} wheels {target} are up to date")
            return target
        say(f"{fw.name}: collecting wheels of {', '.join(requirements)}")
        resolved = Path(tmp) / "resolved"
        links = [root / "clipper", root / "deps", *([wheelhouse] if wheelhouse else [])]
        resolve_wheels([str(deployers), *requirements], target, resolved, links, f"the {fw.name} wheels", say)
        have = {w.name for w in shared}
        for whl in resolved.glob("*.whl"):
            if whl.name not in have and not whl.name.startswith(f"{wheel_prefix(DEPLOYERS_DIST)}-"):
                os.replace(whl, fresh / whl.name)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(fresh, target)
    stamp.write_text(json.dumps({"inputs": key, "requirements": requirements}))
    count = len(list(target.glob("*.whl")))
    say(f"{fw.name} wheels ready: {count} wheels ({', '.join(requirements)} and what they need)")
    return target
