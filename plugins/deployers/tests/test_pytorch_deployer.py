"""The PyTorch deployer on a real local cluster: torch.export, TorchScript and pickled modules, batching, errors,
bad input, `clipper deploy --model`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clipper_deployers import pytorch as pytorch_deployer_impl
from framework_cluster import (
    local_cluster,
    make_mlp,
    mean_batch_size,
    model_metadata,
    output_row,
    predict,
    predict_concurrently,
    require,
)

from clipper_admin import ClipperConnection, ClipperException
from clipper_admin.deployers import pytorch as pytorch_deployer
from clipper_core.cli import main
from clipper_core.container.closure import load_closure
from clipper_core.deployer import load_model_ref
from clipper_core.registry import PluginHost

torch = require("torch", "torch")

pytestmark = [pytest.mark.cluster, pytest.mark.torch]


class ScoredMLP(torch.nn.Module):
    """An MLP with a public method besides ``forward``, which TorchScript would drop: saved as a pickled module."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    def forward(self, x: Any) -> Any:
        return self.net(x)

    def scores(self, x: Any) -> Any:
        return torch.softmax(self.forward(x), dim=1)


def mlp_rows(model: Any, inputs: list[np.ndarray]) -> list[str]:
    time.sleep(0.02)  # a batch costs something, as real models do: concurrent queries queue and get batched
    x = torch.from_numpy(np.stack(inputs).astype(np.float32))
    return [json.dumps(row) for row in model(x).tolist()]


def score_rows(model: Any, inputs: list[np.ndarray]) -> list[str]:
    assert not torch.is_grad_enabled() and torch.is_inference_mode_enabled()
    x = torch.from_numpy(np.stack(inputs).astype(np.float32))
    return [json.dumps(row) for row in model.scores(x).tolist()]


def inputs(n: int, seed: int = 1) -> list[list[float]]:
    return np.random.default_rng(seed).normal(size=(n, 4)).round(6).tolist()


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClipperConnection]:
    with local_cluster(tmp_path_factory.mktemp("clipper-home"), "torch-deployer") as c:
        yield c


@pytest.fixture(scope="module")
def mlp(conn: ClipperConnection) -> Any:
    model = make_mlp(torch)
    pytorch_deployer.create_endpoint(
        conn, "mlp", "doubles", mlp_rows, model, default_output="DEFAULT", slo_micros=10_000_000
    )
    return model


def direct(model: Any, xs: list[list[float]]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor(xs, dtype=torch.float32)).numpy()


def test_the_deployers_are_registered_plugins_that_import_no_framework() -> None:
    names = PluginHost().deployers().names()
    assert {"pytorch", "onnx", "python_closure"} <= set(names)
    code = (
        "import sys\n"
        "from clipper_core.registry import PluginHost\n"
        "deployers = PluginHost().deployers()\n"
        "assert deployers.get('pytorch').PLUGIN_NAME == 'pytorch' and deployers.get('onnx').PLUGIN_NAME == 'onnx'\n"
        "import clipper_admin.deployers.pytorch, clipper_admin.deployers.onnx\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


class ExportedMethodMLP(torch.nn.Module):
    """A method TorchScript keeps (``@torch.jit.export``) but ``torch.export`` would not."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    @torch.jit.export
    def doubled(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.fc(x)


@pytest.mark.parametrize(
    ("make", "options", "fmt"),
    [
        (lambda: make_mlp(torch), {}, "torchscript"),
        (lambda: make_mlp(torch), {"example_inputs": torch.zeros(3, 4)}, "export"),
        (lambda: make_mlp(torch), {"serialization": "pickle"}, "pickle"),
        (ScoredMLP, {"example_inputs": torch.zeros(3, 4)}, "pickle"),
        (ScoredMLP, {"serialization": "export", "example_inputs": torch.zeros(3, 4)}, "export"),
        (ExportedMethodMLP, {"example_inputs": torch.zeros(3, 4)}, "torchscript"),
    ],
)
def test_the_saved_format_and_the_replica_side_load(
    make: Any, options: dict[str, Any], fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make().eval()
    directory = Path(pytorch_deployer_impl.prepare_pytorch_model("fmt", mlp_rows, model, **options))
    try:
        assert json.loads((directory / "metadata.json").read_text())["format"] == fmt
        monkeypatch.setenv("CLIPPER_MODEL_PATH", str(directory))  # what the runtime serves
        predictor = load_closure(directory)
        xs = inputs(5)
        got = [json.loads(o) for o in predictor([np.array(x) for x in xs])]
        np.testing.assert_allclose(np.array(got), direct(model, xs), rtol=1e-5, atol=1e-6)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_torchscript_mlp_predicts_as_the_model_with_batching(conn: ClipperConnection, mlp: Any) -> None:
    assert model_metadata(conn, "mlp")["format"] == "torchscript"
    xs = inputs(64)
    got = [output_row(r) for r in predict_concurrently(conn, "mlp", xs)]
    np.testing.assert_allclose(np.array(got), direct(mlp, xs), rtol=1e-5, atol=1e-6)
    assert mean_batch_size(conn, "mlp") > 1.0


def test_a_model_that_raises_answers_default_and_the_replica_stays_up(conn: ClipperConnection, mlp: Any) -> None:
    [pid] = conn.cm.replica_pids("mlp", "1")
    r = predict(conn, "mlp", [1.0, 2.0, 3.0, 4.0, 5.0])  # 5 features for a 4-feature model: torch raises
    assert r["default"] is True and r["output"] == "DEFAULT"
    assert "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x5 and 4x16)" in r["default_explanation"], r
    x = inputs(1, seed=7)
    np.testing.assert_allclose(output_row(predict(conn, "mlp", x[0])), direct(mlp, x)[0], rtol=1e-5, atol=1e-6)
    assert conn.cm.replica_pids("mlp", "1") == [pid]


def test_a_module_with_its_own_methods_is_pickled_and_runs_in_inference_mode(conn: ClipperConnection) -> None:
    model = ScoredMLP().eval()
    pytorch_deployer.deploy_pytorch_model(conn, "scored", 1, "doubles", score_rows, model)
    conn.register_application("scored", "doubles", "DEFAULT", 10_000_000)
    conn.link_model_to_app("scored", "scored")
    assert model_metadata(conn, "scored")["format"] == "pickle"
    xs = inputs(8, seed=3)
    got = [output_row(predict(conn, "scored", x)) for x in xs]
    with torch.no_grad():
        want = model.scores(torch.tensor(xs, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(np.array(got), want, rtol=1e-5, atol=1e-6)


def test_a_module_with_example_inputs_is_saved_with_torch_export(conn: ClipperConnection) -> None:
    model = make_mlp(torch, seed=4)
    pytorch_deployer.create_endpoint(
        conn, "exported", "doubles", mlp_rows, model, slo_micros=10_000_000, example_inputs=torch.zeros(1, 4)
    )
    assert model_metadata(conn, "exported")["format"] == "export"
    xs = inputs(24, seed=5)  # concurrent: batches of several sizes through the dynamic batch dimension
    got = [output_row(r) for r in predict_concurrently(conn, "exported", xs, clients=8)]
    np.testing.assert_allclose(np.array(got), direct(model, xs), rtol=1e-5, atol=1e-6)


def test_bad_input_is_refused_before_anything_is_built(
    conn: ClipperConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (sorted(conn.get_all_models()), sorted(conn.get_all_apps()))
    model = make_mlp(torch)
    with pytest.raises(ClipperException, match=r"pytorch_model must be a torch.nn.Module .*got a builtins.dict"):
        pytorch_deployer.deploy_pytorch_model(conn, "bad", 1, "doubles", mlp_rows, {"weights": [1.0]})
    with pytest.raises(ClipperException, match=r"calls func\(model, inputs\) once per batch"):
        pytorch_deployer.deploy_pytorch_model(conn, "bad", 1, "doubles", lambda xs: xs, model)
    with pytest.raises(ClipperException, match=r"calls func\(model, inputs\) once per batch"):
        pytorch_deployer.create_endpoint(conn, "bad", "doubles", lambda m, xs, extra: xs, model)
    with pytest.raises(ClipperException, match=r"serialization must be one of"):
        pytorch_deployer.deploy_pytorch_model(conn, "bad", 1, "doubles", mlp_rows, model, serialization="onnx")
    with pytest.raises(ClipperException, match=r"serialization='export' needs example_inputs"):
        pytorch_deployer.deploy_pytorch_model(conn, "bad", 1, "doubles", mlp_rows, model, serialization="export")
    with pytest.raises(ClipperException, match=r"example_inputs must be a torch.Tensor"):
        pytorch_deployer.deploy_pytorch_model(conn, "bad", 1, "doubles", mlp_rows, model, example_inputs=[1.0])
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(ClipperException, match=r"pip install 'clipper-deployers\[torch\]'"):
        pytorch_deployer.create_endpoint(conn, "bad", "doubles", mlp_rows, model)
    assert (sorted(conn.get_all_models()), sorted(conn.get_all_apps())) == before
    assert not conn.cm.paths.model_dir("bad", "1").exists()


def test_a_model_the_replica_cannot_load_fails_the_deploy_with_the_cause(conn: ClipperConnection) -> None:
    directory = Path(pytorch_deployer_impl.prepare_pytorch_model("unloadable", mlp_rows, make_mlp(torch)))
    try:
        (directory / pytorch_deployer_impl.TORCHSCRIPT_FILE).write_bytes(b"not a TorchScript archive")
        with pytest.raises(ClipperException, match=r"unloadable:1 failed to load in its replica.*RuntimeError"):
            conn.build_and_deploy_model("unloadable", 1, "doubles", str(directory), "default")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert conn.cm.replica_pids("unloadable", "1") == []


CLI_MODEL = """
import json

import numpy as np
import torch

torch.manual_seed(3)
mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).eval()


def rows(model, inputs):
    return [json.dumps(r) for r in model(torch.from_numpy(np.stack(inputs).astype(np.float32))).tolist()]
"""


def test_clipper_deploy_takes_a_pytorch_model_by_reference(
    conn: ClipperConnection, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "cli_model.py"
    source.write_text(CLI_MODEL)
    where = ["--cluster-name", conn.cm.cluster_name]
    assert main(["deploy", "cli-mlp", f"{source}:rows", "--deployer", "pytorch", *where]) == 1
    assert "Deployer 'pytorch' needs --model REF (its pytorch_model)" in capsys.readouterr().err
    assert (
        main(["deploy", "cli-mlp", f"{source}:rows", "--model", f"{source}:nothing", "--deployer", "pytorch", *where])
        == 1
    )
    assert "has no attribute named 'nothing'" in capsys.readouterr().err
    assert (
        main(
            [
                "deploy",
                "cli-mlp",
                f"{source}:rows",
                "--deployer",
                "pytorch",
                "--model",
                f"{source}:mlp",
                "--app",
                "--slo-micros",
                "10000000",
                *where,
            ]
        )
        == 0
    )
    assert "Deployed cli-mlp:1 and linked it to application 'cli-mlp'" in capsys.readouterr().out
    model = load_model_ref(f"{source}:mlp")
    xs = inputs(3, seed=11)
    got = [output_row(predict(conn, "cli-mlp", x)) for x in xs]
    np.testing.assert_allclose(np.array(got), direct(model, xs), rtol=1e-5, atol=1e-6)
    assert main(["deploy", "plain", f"{source}:rows", "--model", f"{source}:mlp", *where]) == 1
    assert "Deployer 'python_closure' takes no --model" in capsys.readouterr().err
