"""``build_model`` for the local cluster: copy a model directory into the model store, optionally with a venv."""

from __future__ import annotations

import logging
import os
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

from clipper_core.container_manager import check_model_data_path
from clipper_core.errors import ClipperException, DeploymentError
from clipper_core.files import write_json_atomic
from clipper_core.local._state import ClusterPaths, check_path_component, image_ref

logger = logging.getLogger(__name__)

PTH_NAME = "_clipper_parent_env.pth"
PIP_TIMEOUT = 1800.0


def parent_site_packages() -> list[str]:
    """This interpreter's site-packages directories (what a model venv should fall back to)."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    seen: list[str] = []
    for d in dirs:
        if os.path.isdir(d) and d not in seen:
            seen.append(d)
    return seen


def _tail_text(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run(cmd: list[str], what: str, timeout: float) -> str:
    try:
        result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        msg = f"{what} timed out after {timeout:.0f} s"
        raise DeploymentError(msg) from exc
    except OSError as exc:
        msg = f"{what} could not run: {exc}"
        raise DeploymentError(msg) from exc
    if result.returncode != 0:
        msg = f"{what} failed with exit code {result.returncode}:\n{_tail_text(result.stdout + result.stderr)}"
        raise DeploymentError(msg)
    return result.stdout


def create_model_venv(venv_dir: Path, pkgs: list[str]) -> str:
    """Create ``venv_dir`` that sees this interpreter's packages (its own first) and pip-install ``pkgs`` into it.

    :returns: the venv's python executable.
    """
    if venv_dir.exists():
        shutil.rmtree(venv_dir)
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(venv_dir)], f"creating the virtualenv {venv_dir}", 300.0)
    python = venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        "locating the virtualenv's site-packages",
        60.0,
    ).strip()
    # ``site.addsitedir`` appends after the venv's own site-packages and also runs the parent's .pth files
    # (editable installs), so clipper_core/numpy/cloudpickle resolve while the venv's packages take precedence.
    lines = [f"import site; site.addsitedir({d!r})" for d in parent_site_packages()]
    Path(purelib, PTH_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
    logger.info("installing %s into %s", pkgs, venv_dir)
    _run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *pkgs],
        f"pip install {' '.join(pkgs)}",
        PIP_TIMEOUT,
    )
    return str(python)


def build_local_model(
    paths: ClusterPaths,
    cluster_name: str,
    name: str,
    version: str,
    model_data_path: str,
    base_image: str,
    container_registry: str | None = None,
    pkgs_to_install: list[str] | None = None,
) -> str:
    """Copy ``model_data_path`` into ``models/<name>/<version>/`` (replacing an earlier build); return the image."""
    name = check_path_component(name, "model name")
    version = check_path_component(str(version), "model version")
    source = Path(check_model_data_path(model_data_path))
    if container_registry:
        logger.debug("container_registry %r ignored by the local container manager", container_registry)
    target = paths.model_dir(name, version)
    staging = target.parent / f".{version}.building-{os.getpid()}"
    try:
        paths.make_dirs()
        target.parent.mkdir(parents=True, exist_ok=True)
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(source, staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError as exc:  # includes shutil.Error (unreadable files, broken symlinks) and a full disk
        shutil.rmtree(staging, ignore_errors=True)
        msg = (
            f"Building model {name}:{version} failed: could not copy {source} into the model store at {target} "
            f"({exc}). Check that every file under {source} is readable and that {paths.models} is writable "
            "and has free space."
        )
        raise DeploymentError(msg) from exc
    image = image_ref(cluster_name, name, version)
    pkgs = [str(p) for p in (pkgs_to_install or [])]
    python = sys.executable
    venv_dir = paths.venv_dir(name, version)
    if pkgs:
        try:
            python = create_model_venv(venv_dir, pkgs)
        except ClipperException as exc:
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(venv_dir, ignore_errors=True)
            msg = f"Building model {name}:{version} failed: {exc.msg}"
            raise DeploymentError(msg) from exc
    elif venv_dir.exists():
        shutil.rmtree(venv_dir)
    write_json_atomic(
        target / "build.json",
        {
            "image": image,
            "name": name,
            "version": version,
            "base_image": base_image,
            "pkgs_to_install": pkgs,
            "python": python,
            "source": str(source.resolve()),
            "built_at": time.time(),
        },
    )
    logger.info("built %s from %s", image, source)
    return image
