"""The ``clipper`` command is assembled from plugins: commands, manager flags, tracing, ``clipper deploy``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from clipper_core import hookimpl
from clipper_core.cli import build_parser, collect_commands, main
from clipper_core.cli._managers import build_manager
from clipper_core.container_manager import QUERY_PORT_OPTION, ContainerManager, ManagerOption
from clipper_core.errors import PluginError, UnknownPluginError
from clipper_core.plugins import get_plugin_manager
from clipper_core.ports import free_ports
from clipper_core.registry import PluginHost
from clipper_core.testing import FakeContainerManager


@pytest.fixture(autouse=True)
def _entry_points_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLIPPER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("CLIPPER_DISABLED_PLUGINS", raising=False)


def _help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def test_help_shows_a_plugins_commands_only_when_it_is_installed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _help(capsys)
    for command in ("start", "stop", "status", "deploy", "predict", "plugins", "json-encode"):
        assert command in out, command
    monkeypatch.setenv("CLIPPER_DISABLED_PLUGINS", "json_input")
    out = _help(capsys)
    assert "json-encode" not in out and "deploy" in out


def test_a_plugin_command_runs_with_the_plugin_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["json-encode", '{"a": [1, 2]}']) == 0
    assert capsys.readouterr().out.strip() == '{"a":[1,2]}'
    assert main(["json-encode", "{nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: VALUE is not valid JSON") and err.count("\n") == 1


def test_trace_plugins_logs_every_hook_call(tmp_path: Path) -> None:
    env = {**os.environ, "CLIPPER_TRACE_PLUGINS": "1"}
    env.pop("CLIPPER_DISABLE_PLUGIN_AUTOLOAD", None)
    proc = subprocess.run(
        [sys.executable, "-m", "clipper_core.cli", "plugins"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for hook in ("clipper_register_commands", "clipper_register_container_managers"):
        assert f"hook {hook} called" in proc.stderr, proc.stderr
        assert f"hook {hook} returned" in proc.stderr
    quiet = subprocess.run(
        [sys.executable, "-m", "clipper_core.cli", "plugins"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
        env={k: v for k, v in env.items() if k != "CLIPPER_TRACE_PLUGINS"},
    )
    assert "hook clipper_register" not in quiet.stderr


class _Alpha(FakeContainerManager):
    PLUGIN_NAME: ClassVar[str] = "alpha"

    def __init__(self, cluster_name: str = "a", clipper_query_port: int = 1, color: str = "red") -> None:
        super().__init__(cluster_name)
        self.clipper_query_port = clipper_query_port
        self.color = color

    @classmethod
    def cli_options(cls) -> Sequence[ManagerOption]:
        return (QUERY_PORT_OPTION, ManagerOption("color", "a colour"))


class _Beta(FakeContainerManager):
    PLUGIN_NAME: ClassVar[str] = "beta"

    def __init__(self, cluster_name: str = "b", clipper_query_port: int = 2) -> None:
        super().__init__(cluster_name)
        self.clipper_query_port = clipper_query_port

    @classmethod
    def cli_options(cls) -> Sequence[ManagerOption]:
        return (QUERY_PORT_OPTION,)


def _host(*managers: type[ContainerManager]) -> PluginHost:
    class Managers:
        @hookimpl
        def clipper_register_container_managers(self) -> list[type[ContainerManager]]:
            return list(managers)

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Managers(), "managers")
    return PluginHost(pm)


def _parse(host: PluginHost, argv: list[str]) -> Any:  # noqa: ANN401
    return build_parser(host, collect_commands(host)).parse_args(argv)


def test_each_manager_gets_only_the_flags_it_declares() -> None:
    host = _host(_Alpha, _Beta)
    alpha = build_manager(host, _parse(host, ["status", "--manager", "alpha", "--query-port", "9", "--color", "blue"]))
    assert isinstance(alpha, _Alpha) and (alpha.clipper_query_port, alpha.color) == (9, "blue")
    beta = build_manager(host, _parse(host, ["status", "--manager", "beta", "--cluster-name", "x"]))
    assert isinstance(beta, _Beta) and (beta.cluster_name, beta.clipper_query_port) == ("x", 2)
    with pytest.raises(UnknownPluginError, match="'beta' container manager does not take 'color'"):
        build_manager(host, _parse(host, ["status", "--manager", "beta", "--color", "blue"]))
    with pytest.raises(UnknownPluginError, match="Unknown container manager 'gamma'. Installed container managers:"):
        build_manager(host, _parse(host, ["status", "--manager", "gamma"]))


def test_two_managers_declaring_one_flag_for_different_arguments_is_a_plugin_error() -> None:
    class Clash(_Beta):
        PLUGIN_NAME: ClassVar[str] = "clash"

        @classmethod
        def cli_options(cls) -> Sequence[ManagerOption]:
            return (ManagerOption("port", "a port", int, "--query-port"),)

    host = _host(_Alpha, Clash)
    with pytest.raises(PluginError, match="both declare --query-port"):
        _parse(host, ["status"])


def test_two_plugins_adding_one_command_is_refused() -> None:
    class Again:
        @hookimpl
        def clipper_register_commands(self, commands: Any) -> None:  # noqa: ANN401
            commands.add("start", help="again", run=lambda args, ctx: 0)

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Again(), "again")
    with pytest.raises(PluginError, match="Two plugins add the command 'clipper start'"):
        collect_commands(PluginHost(pm))


@pytest.mark.cluster
def test_deploy_a_function_from_a_file_and_predict(
    clipper_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.py"
    model.write_text("def total(xs):\n    return [str(float(sum(x))) for x in xs]\n")
    ports = [str(p) for p in free_ports(4)]
    where = ["--cluster-name", "cli-deploy"]
    assert (
        main(
            [
                "start",
                *where,
                "--query-port",
                ports[0],
                "--mgmt-port",
                ports[1],
                "--rpc-port",
                ports[2],
                "--redis-port",
                ports[3],
            ]
        )
        == 0
    )
    try:
        capsys.readouterr()
        assert main(["deploy", "summer", f"{model}:total", "--app", "--default-output", "-1", *where]) == 0
        assert "Deployed summer:1" in capsys.readouterr().out
        assert main(["predict", "summer", "[1.5, 2.0]", *where]) == 0
        assert '"output": 3.5' in capsys.readouterr().out
        assert main(["deploy", "other", f"{tmp_path / 'missing.py'}:f", *where]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: Cannot load") and "missing.py" in err and err.count("\n") == 1
        assert main(["deploy", "other", f"{model}:nothing", *where]) == 1
        assert "has no callable named 'nothing'" in capsys.readouterr().err
        assert main(["deploy", "other", f"{model}:total", "--deployer", "tensorflow", *where]) == 1
        assert (
            "Unknown deployer 'tensorflow'. Installed deployers: onnx, pyspark, python_closure, pytorch"
            in capsys.readouterr().err
        )
        # A Spark model cannot come from the shell: the deployer says how to deploy one.
        assert main(["deploy", "other", f"{model}:total", "--deployer", "pyspark", *where]) == 1
        assert "needs the fitted Spark model and its SparkContext" in capsys.readouterr().err
    finally:
        assert main(["stop", *where]) == 0
