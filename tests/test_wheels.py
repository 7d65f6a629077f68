"""The distributions as users get them: built as wheels, installed into fresh virtualenvs, used from outside the tree.

Every distribution is built with ``pip wheel --no-deps`` (build isolation, so only its build-system table counts) and
installed with its third-party dependencies into a new ``python -m venv`` without system site-packages; every command
runs with its working directory in a temporary directory, so no source tree is importable.

* core only (clipper-core): imports none of tornado/docker/kubernetes/pyspark, has no ``clipper images``, runs a
  model replica against a query frontend, and says to install clipper-frontend when asked for a local cluster;
* core and docker without the frontend: ``clipper images build`` of a frontend image names clipper-frontend;
* everything (core, frontend, deployers, docker): ``clipper images`` exists and builds the images from the installed
  distributions, and a Docker cluster started from there answers a prediction.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clipper_core.ports import free_ports
from tests.frontend_harness import query_frontend

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = {
    "clipper-core": ROOT,
    "clipper-frontend": ROOT / "frontend",
    "clipper-deployers": ROOT / "plugins" / "deployers",
    "clipper-docker": ROOT / "plugins" / "docker_manager",
}
IN_CI = os.environ.get("CI", "").lower() == "true"
#: The Docker part tags its images under this registry, so it never replaces the images other clusters use.
REGISTRY = "clipper-wheeltest"
IMAGES = (
    "management_frontend",
    "python-closure-container",
    "query_frontend",
    "redis",
    "pyspark-container",
    "pytorch-container",
    "onnx-container",
)
_IGNORE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")

pytestmark = pytest.mark.timeout(1500)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{cmd} exited with {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


class Venv:
    """A fresh virtualenv and the environment its commands run with (its bin/ first, no PYTHONPATH)."""

    def __init__(self, path: Path, workdir: Path) -> None:
        self.path = path
        self.workdir = workdir
        self.python = str(path / "bin" / "python")
        drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
        self.env = {k: v for k, v in os.environ.items() if k not in drop}
        self.env["PATH"] = f"{path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"

    def run(self, *args: str, timeout: float = 900, env: dict[str, str] | None = None) -> str:
        return _run(list(args), self.workdir, {**self.env, **(env or {})}, timeout)

    def script(self, code: str, *args: str, timeout: float = 900, env: dict[str, str] | None = None) -> str:
        return self.run(self.python, "-c", textwrap.dedent(code), *args, timeout=timeout, env=env)


def _make_venv(root: Path, name: str, wheels: list[Path]) -> Venv:
    workdir = root / f"{name}-cwd"
    workdir.mkdir()
    env = Venv(root / name, workdir)
    _run([sys.executable, "-m", "venv", str(env.path)], workdir, env.env, timeout=300)
    # Only these wheel files, plus their third-party dependencies from the package index (normal pip cache).
    env.run(env.python, "-m", "pip", "install", "--disable-pip-version-check", "-q", *map(str, wheels))
    return env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wheels")


@pytest.fixture(scope="module")
def wheels(workdir: Path) -> dict[str, Path]:
    """``pip wheel --no-deps`` of every distribution, each from a clean copy of its project directory."""
    src = workdir / "src"
    out = workdir / "dist"
    copies = []
    for dist, project in PROJECTS.items():
        copy = src / dist
        shutil.copytree(project, copy, ignore=_IGNORE)
        copies.append(str(copy))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "-q", "--no-deps"]
    _run([*pip_wheel, "-w", str(out), *copies], workdir, env)
    found = {}
    for dist in PROJECTS:
        (whl,) = out.glob(f"{dist.replace('-', '_')}-*.whl")
        found[dist] = whl
    return found


@pytest.fixture(scope="module")
def core_venv(workdir: Path, wheels: dict[str, Path]) -> Venv:
    return _make_venv(workdir, "core", [wheels["clipper-core"]])


@pytest.fixture(scope="module")
def full_venv(workdir: Path, wheels: dict[str, Path]) -> Venv:
    return _make_venv(workdir, "full", list(wheels.values()))


def _last_json(output: str) -> dict[str, Any]:
    """The last line of ``output`` that is a JSON object (what the scripts print; log lines may follow)."""
    lines = [line for line in output.splitlines() if line.startswith("{")]
    assert lines, output
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _commands(help_text: str) -> set[str]:
    """The sub-command names ``clipper --help`` lists."""
    section = help_text.split("positional arguments:", 1)[1].split("options:", 1)[0]
    return set(re.findall(r"^ {4}(\w[\w-]*)\s", section, re.M))


# -- clipper-core alone -----------------------------------------------------------------------------------


def test_core_alone_imports_no_optional_stack(core_venv: Venv) -> None:
    out = core_venv.script(
        """
        import importlib, json, pkgutil, sys
        import clipper_admin, clipper_core
        names = [m.name for m in pkgutil.walk_packages(clipper_core.__path__, "clipper_core.")]
        need_pytest = []
        for name in names:
            if name.endswith("__main__"):
                continue
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as exc:  # the plugin-testing kit needs the `testing` extra
                if exc.name != "pytest" or not name.startswith("clipper_core.testing"):
                    raise
                need_pytest.append(name)
        heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tornado", "docker", "kubernetes", "pyspark"})
        print(json.dumps({"file": clipper_core.__file__, "modules": len(names), "heavy": heavy,
                          "need_pytest": need_pytest}))
        """
    )
    result = _last_json(out)
    assert result["file"].startswith(str(core_venv.path)), result  # the installed wheel, not a source tree
    assert result["modules"] > 20
    assert result["heavy"] == []
    assert len(result["need_pytest"]) < result["modules"] / 4, result


def test_core_alone_has_no_images_command(core_venv: Venv) -> None:
    commands = _commands(core_venv.run("clipper", "--help"))
    assert {"start", "stop", "status", "predict", "plugins"} <= commands
    assert "images" not in commands


def test_core_alone_runs_a_model_replica(core_venv: Venv, redis_server: tuple[str, int], tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    # Pickled inside the venv (as __main__), so the closure travels by value.
    core_venv.script(
        f"""
        import cloudpickle
        with open({str(model / "func.pkl")!r}, "wb") as f:
            cloudpickle.dump(lambda xs: [str(sum(x) + 1.0) for x in xs], f)
        """
    )
    with query_frontend(redis_server[1], tmp_path) as fe:
        fe.db(0).flushall()
        fe.add_app("wheel-app")
        fe.add_model("wheel-model", "1")
        fe.link("wheel-app", "wheel-model")
        fe.wait_for_app("wheel-app")
        env = {
            **core_venv.env,
            "CLIPPER_MODEL_NAME": "wheel-model",
            "CLIPPER_MODEL_VERSION": "1",
            "CLIPPER_INPUT_TYPE": "doubles",
            "CLIPPER_IP": "127.0.0.1",
            "CLIPPER_PORT": str(fe.rpc_port),
            "CLIPPER_MODEL_PATH": str(model),
            "CLIPPER_READY_FILE": str(tmp_path / "ready"),
        }
        log = tmp_path / "replica.log"
        with open(log, "wb") as out:
            replica = subprocess.Popen(
                [core_venv.python, "-m", "clipper_core.container"],
                cwd=core_venv.workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:

            def answered() -> bool:
                assert replica.poll() is None, log.read_text()
                body = fe.predict("wheel-app", {"input": [1.0, 2.0]}).json()
                return body.get("default") is False and body.get("output") == 4.0

            fe.wait_until(answered, timeout=60, what="a prediction from the replica installed from the wheel")
        finally:
            replica.terminate()
            try:
                replica.wait(timeout=15)
            except subprocess.TimeoutExpired:
                replica.kill()
                replica.wait(timeout=15)


def test_core_alone_local_cluster_asks_for_clipper_frontend(core_venv: Venv, tmp_path: Path) -> None:
    query, mgmt, rpc, redis = free_ports(4)
    out = core_venv.script(
        f"""
        import json
        from clipper_admin import ClipperConnection, LocalContainerManager
        from clipper_core.errors import ClipperException
        cm = LocalContainerManager(cluster_name="wheels", clipper_query_port={query}, clipper_management_port={mgmt},
                                   clipper_rpc_port={rpc}, redis_port={redis})
        try:
            ClipperConnection(cm).start_clipper()
        except ClipperException as exc:
            print(json.dumps({{"error": exc.msg, "running": cm.is_running()}}))
        else:
            cm.stop_all()
            print(json.dumps({{"error": None}}))
        """,
        env={"CLIPPER_HOME": str(tmp_path / "home")},
    )
    result = _last_json(out)
    assert result["error"] and "clipper-frontend" in result["error"], result
    assert result["running"] is False


# -- every distribution --------------------------------------------------------------------------------------


def test_full_install_has_the_images_command(full_venv: Venv) -> None:
    commands = _commands(full_venv.run("clipper", "--help"))
    assert "images" in commands
    assert "--wheelhouse" in full_venv.run("clipper", "images", "build", "--help")
    out = full_venv.script(
        """
        import json
        from clipper_docker.images.build import packaged_dockerfiles
        from importlib import resources
        where = str(resources.files("clipper_docker.images"))
        print(json.dumps({"dir": where, "files": sorted(packaged_dockerfiles())}))
        """
    )
    result = _last_json(out)
    assert result["dir"].startswith(str(full_venv.path))  # package data of the installed wheel
    assert result["files"] == [f"{name}.Dockerfile" for name in sorted(IMAGES)]


@pytest.fixture(scope="module")
def without_frontend_venv(workdir: Path, wheels: dict[str, Path]) -> Venv:
    return _make_venv(workdir, "no-frontend", [wheels["clipper-core"], wheels["clipper-docker"]])


def test_frontend_images_need_clipper_frontend(without_frontend_venv: Venv) -> None:
    venv = without_frontend_venv
    assert "images" in _commands(venv.run("clipper", "--help"))
    done = subprocess.run(
        ["clipper", "images", "build", "--only", "query_frontend", "redis"],
        cwd=venv.workdir,
        env=venv.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "clipper-frontend, which is not installed" in done.stderr and "pip install clipper-frontend" in done.stderr


@pytest.fixture(scope="module")
def docker_daemon() -> Iterator[None]:
    """Skip (fail under CI=true) unless a Docker daemon answers."""
    import docker

    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any reason means "no daemon here"
        reason = f"no Docker daemon answers: {exc}"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    yield
    client.close()


@pytest.mark.docker
def test_full_install_builds_images_and_runs_a_docker_cluster(full_venv: Venv, docker_daemon: None) -> None:
    env = {"CLIPPER_REGISTRY": REGISTRY}
    build = full_venv.run("clipper", "images", "build", "--offline", timeout=1200, env=env)
    assert "re-packing the installed clipper-core" in build and "re-packing the installed clipper-frontend" in build
    assert "images ready in" in build and f"{REGISTRY}/query_frontend:" in build, build
    # offline, the images are built on the debootstrap-made base, whether this build made it or found it
    assert re.search(r"base image clipper/debian-python3:bookworm is present|-> clipper/debian-python3:bookworm", build)

    cluster = f"wheels{os.getpid()}"
    out = full_venv.script(
        """
        import json, sys
        import docker, requests
        from clipper_admin import ClipperConnection, DockerContainerManager
        from clipper_core.ports import free_ports
        from clipper_deployers import python as python_deployer

        name = sys.argv[1]
        query, mgmt, rpc, redis = free_ports(4)
        cm = DockerContainerManager(cluster_name=name, docker_network="host", clipper_query_port=query,
                                    clipper_management_port=mgmt, clipper_rpc_port=rpc, redis_port=redis)
        conn = ClipperConnection(cm)
        result = {}
        try:
            conn.start_clipper()
            python_deployer.create_endpoint(conn, "wheel-app", "doubles", lambda xs: [str(sum(x) + 1.0) for x in xs])
            r = requests.post(f"http://{conn.get_query_addr()}/wheel-app/predict", json={"input": [1.0, 2.0]},
                              timeout=30)
            result["prediction"] = r.json()
            result["image"] = conn.get_model_info("wheel-app", 1)["container_name"]
        finally:
            conn.stop_all()
            client = docker.from_env()
            label = f"ai.clipper.container.label={name}"
            result["left"] = [c.name for c in client.containers.list(all=True, filters={"label": label})]
            for image in client.images.list(name=f"{name}-wheel-app"):
                client.images.remove(image.id, force=True)
        print(json.dumps(result))
        """,
        cluster,
        timeout=600,
        env=env,
    )
    result = _last_json(out)
    assert result["prediction"]["output"] == 4.0 and result["prediction"]["default"] is False, result
    assert result["image"] == f"{cluster}-wheel-app:1"
    assert result["left"] == []
