"""The ONNX deployer on a real local cluster: an ONNX file and a PyTorch module exported to ONNX, served with
onnxruntime, batching, a failing model, bad input."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clipper_deployers import onnx as clipper_onnx
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
from clipper_admin.deployers import onnx as onnx_deployer
from clipper_core.cli import main
from clipper_core.container.closure import load_closure

ort = require("onnxruntime", "onnx")
torch = require("torch", "torch")

pytestmark = [pytest.mark.cluster, pytest.mark.onnx, pytest.mark.torch]


def session_rows(session: Any, inputs: list[np.ndarray]) -> list[str]:
    time.sleep(0.02)  # a batch costs something, as real models do: concurrent queries queue and get batched
    [out] = session.run(None, {session.get_inputs()[0].name: np.stack(inputs).astype(np.float32)})
    return [json.dumps(row) for row in out.tolist()]


def inputs(n: int, seed: int = 1) -> list[list[float]]:
    return np.random.default_rng(seed).normal(size=(n, 4)).round(6).tolist()


def direct(model: Any, xs: list[list[float]]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor(xs, dtype=torch.float32)).numpy()


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClipperConnection]:
    with local_cluster(tmp_path_factory.mktemp("clipper-home"), "onnx-deployer") as c:
        yield c


@pytest.fixture(scope="module")
def mlp() -> Any:
    return make_mlp(torch, seed=5)


@pytest.fixture(scope="module")
def onnx_file(mlp: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "mlp.onnx"
    path.write_bytes(onnx_deployer.export_pytorch_model(mlp, torch.zeros(2, 4)))
    return path


@pytest.mark.parametrize("kind", ["path", "pathlike", "bytes", "ModelProto"])
def test_each_form_of_onnx_model_is_saved_and_loaded_replica_side(
    kind: str, mlp: Any, onnx_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnx = require("onnx", "onnx")
    given = {
        "path": str(onnx_file),
        "pathlike": onnx_file,
        "bytes": onnx_file.read_bytes(),
        "ModelProto": onnx.load(str(onnx_file)),
    }[kind]
    directory = Path(clipper_onnx.prepare_onnx_model("forms", session_rows, given))
    try:
        assert json.loads((directory / "metadata.json").read_text())["format"] == "onnx"
        monkeypatch.setenv("CLIPPER_MODEL_PATH", str(directory))  # what the runtime serves
        predictor = load_closure(directory)
        assert isinstance(predictor.model, ort.InferenceSession)
        xs = inputs(5)
        got = [json.loads(o) for o in predictor([np.array(x) for x in xs])]
        np.testing.assert_allclose(np.array(got), direct(mlp, xs), rtol=1e-5, atol=1e-5)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_the_original_pytorch_entry_exports_and_serves_with_batching(conn: ClipperConnection, mlp: Any) -> None:
    onnx_deployer.create_pytorch_endpoint(
        conn,
        "mlp-onnx",
        "doubles",
        torch.zeros(1, 4),
        session_rows,
        mlp,
        default_output="DEFAULT",
        slo_micros=10_000_000,
    )
    assert model_metadata(conn, "mlp-onnx")["format"] == "onnx"
    xs = inputs(64)
    got = [output_row(r) for r in predict_concurrently(conn, "mlp-onnx", xs)]
    np.testing.assert_allclose(np.array(got), direct(mlp, xs), rtol=1e-5, atol=1e-5)
    assert mean_batch_size(conn, "mlp-onnx") > 1.0


def test_an_onnx_file_is_served_and_a_failing_run_answers_default(
    conn: ClipperConnection, mlp: Any, onnx_file: Path
) -> None:
    onnx_deployer.deploy_onnx_model(conn, "mlp-file", 1, "doubles", session_rows, str(onnx_file))
    conn.register_application("mlp-file", "doubles", "DEFAULT", 10_000_000)
    conn.link_model_to_app("mlp-file", "mlp-file")
    xs = inputs(4, seed=9)
    got = [output_row(predict(conn, "mlp-file", x)) for x in xs]
    np.testing.assert_allclose(np.array(got), direct(mlp, xs), rtol=1e-5, atol=1e-5)
    [pid] = conn.cm.replica_pids("mlp-file", "1")
    r = predict(conn, "mlp-file", [1.0, 2.0, 3.0])  # 3 features for a 4-feature graph: onnxruntime raises
    assert r["default"] is True and r["output"] == "DEFAULT"
    assert "InvalidArgument" in r["default_explanation"] and "input0" in r["default_explanation"], r
    np.testing.assert_allclose(output_row(predict(conn, "mlp-file", xs[0])), got[0], rtol=1e-6)
    assert conn.cm.replica_pids("mlp-file", "1") == [pid]


def test_clipper_deploy_takes_an_onnx_file(
    conn: ClipperConnection, mlp: Any, onnx_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "run_session.py"
    source.write_text(
        "import json\n\nimport numpy as np\n\n\n"
        "def run(session, inputs):\n"
        "    [out] = session.run(None, {'input0': np.stack(inputs).astype(np.float32)})\n"
        "    return [json.dumps(row) for row in out.tolist()]\n"
    )
    where = ["--cluster-name", conn.cm.cluster_name]
    assert (
        main(
            [
                "deploy",
                "cli-onnx",
                f"{source}:run",
                "--deployer",
                "onnx",
                "--model",
                str(onnx_file),
                "--app",
                "--slo-micros",
                "10000000",
                *where,
            ]
        )
        == 0
    )
    assert "Deployed cli-onnx:1 and linked it to application 'cli-onnx'" in capsys.readouterr().out
    xs = inputs(3, seed=13)
    got = [output_row(predict(conn, "cli-onnx", x)) for x in xs]
    np.testing.assert_allclose(np.array(got), direct(mlp, xs), rtol=1e-5, atol=1e-5)


def test_bad_input_is_refused_before_anything_is_built(
    conn: ClipperConnection, mlp: Any, onnx_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (sorted(conn.get_all_models()), sorted(conn.get_all_apps()))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx graph")
    with pytest.raises(ClipperException, match=r"onnxruntime .* cannot load the ONNX model"):
        onnx_deployer.deploy_onnx_model(conn, "bad", 1, "doubles", session_rows, str(garbage))
    with pytest.raises(ClipperException, match=r"Cannot read the ONNX model file"):
        onnx_deployer.deploy_onnx_model(conn, "bad", 1, "doubles", session_rows, str(tmp_path / "missing.onnx"))
    with pytest.raises(ClipperException, match=r"onnx_model must be a path to an .onnx file"):
        onnx_deployer.create_endpoint(conn, "bad", "doubles", session_rows, 42)
    with pytest.raises(ClipperException, match=r"calls func\(session, inputs\) once per batch"):
        onnx_deployer.deploy_onnx_model(conn, "bad", 1, "doubles", lambda xs: xs, str(onnx_file))
    with pytest.raises(ClipperException, match=r"pytorch_model must be a torch.nn.Module"):
        onnx_deployer.deploy_pytorch_model(conn, "bad", 1, "doubles", torch.zeros(1, 4), session_rows, "model")
    with pytest.raises(ClipperException, match=r"tensorflow ONNX backend is not currently supported"):
        onnx_deployer.deploy_pytorch_model(
            conn, "bad", 1, "doubles", torch.zeros(1, 4), session_rows, mlp, onnx_backend="tensorflow"
        )
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if onnxruntime were not installed
    with pytest.raises(ClipperException, match=r"pip install 'clipper-deployers\[onnx\]'"):
        onnx_deployer.deploy_onnx_model(conn, "bad", 1, "doubles", session_rows, str(onnx_file))
    assert (sorted(conn.get_all_models()), sorted(conn.get_all_apps())) == before
    assert not conn.cm.paths.model_dir("bad", "1").exists()
