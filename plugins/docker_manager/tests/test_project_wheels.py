"""Where the images' project wheels come from: re-packed installed distributions, editable projects, a wheelhouse."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from clipper_docker.images._project_wheels import (
    editable_project_dir,
    from_wheelhouse,
    installed_distribution,
    project_wheels,
    repack_installed,
)
from clipper_docker.images._wheelhouse import user_wheelhouse

from clipper_core.errors import DeploymentError

ROOT = Path(__file__).resolve().parents[3]


def test_repacked_wheel_installs_the_same_files(tmp_path: Path) -> None:
    dist = md.distribution("pluggy")  # installed from a wheel
    first = repack_installed(dist, tmp_path)
    assert first.name == f"pluggy-{dist.version}-py3-none-any.whl"
    again = tmp_path / "again"
    again.mkdir()
    assert repack_installed(dist, again).read_bytes() == first.read_bytes()  # reproducible, for Docker's cache
    with zipfile.ZipFile(first) as whl:
        names = whl.namelist()
        assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", "INSTALLER", "REQUESTED"))]
        assert names[-1].endswith(".dist-info/RECORD")
    target = tmp_path / "target"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target), str(first)],
        check=True,
        timeout=120,
    )
    for rel in dist.files or []:
        if rel.suffix == ".py":
            installed = Path(str(dist.locate_file(rel))).read_bytes()
            assert hashlib.sha256((target / rel).read_bytes()).digest() == hashlib.sha256(installed).digest(), rel


def test_editable_install_points_at_its_project() -> None:
    # The source tree on sys.path holds clipper_core.egg-info; the installed .dist-info is what counts.
    assert editable_project_dir(installed_distribution("clipper-core")) == ROOT
    assert editable_project_dir(installed_distribution("clipper-frontend")) == ROOT / "frontend"
    assert editable_project_dir(installed_distribution("pluggy")) is None


def test_editable_project_is_built_into_a_wheel(tmp_path: Path) -> None:
    (whl,) = project_wheels(["clipper-frontend"], tmp_path, lambda _: None, None, "0")
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
    assert "clipper_frontend/query/app.py" in names
    assert not [n for n in names if n.startswith(("build/", "tests/"))]


def test_named_wheelhouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    house = tmp_path / "house"
    house.mkdir()
    with pytest.raises(DeploymentError, match="has no wheel of clipper-core"):
        from_wheelhouse("clipper-core", house, "1.0")
    for version in ("1.0", "2.0"):
        (house / f"clipper_core-{version}-py3-none-any.whl").write_bytes(version.encode())
    assert from_wheelhouse("clipper-core", house, "2.0").name == "clipper_core-2.0-py3-none-any.whl"
    with pytest.raises(DeploymentError, match="several wheels of clipper-core and none of version 3.0"):
        from_wheelhouse("clipper-core", house, "3.0")
    (copied,) = project_wheels(["clipper-core"], tmp_path / "out", lambda _: None, house, "1.0")
    assert copied.read_bytes() == b"1.0"

    monkeypatch.setenv("CLIPPER_WHEELHOUSE", str(house))
    assert user_wheelhouse(None) == house
    assert user_wheelhouse(tmp_path) == tmp_path
    monkeypatch.setenv("CLIPPER_WHEELHOUSE", str(tmp_path / "missing"))
    with pytest.raises(DeploymentError, match="is not a directory"):
        user_wheelhouse(None)


def test_missing_distribution_is_named(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match=r"clipper-nonexistent is not installed.*pip install clipper-nonexistent"):
        project_wheels(["clipper-nonexistent"], tmp_path, lambda _: None, None, "0")
