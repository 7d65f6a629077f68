"""The ONNX deployer: deploy ``func(session, inputs)`` with an ONNX model served by ``onnxruntime``.

:func:`deploy_onnx_model` takes an ONNX model (a path to a ``.onnx`` file, its bytes, or an ``onnx.ModelProto``);
:func:`deploy_pytorch_model` and :func:`create_pytorch_endpoint` keep the original's
``clipper_admin.deployers.onnx`` entry points: they export a ``torch.nn.Module`` to ONNX with ``inputs`` as the
example input (every input's and output's first dimension is the batch dimension) and deploy that. The original
served it with Caffe2, which no longer exists; ``onnx_backend`` accepts ``"onnxruntime"`` (the default) and, for old
code, ``"caffe2"``, which is served with onnxruntime too.

The model directory holds ``model.onnx``; the replica opens one ``InferenceSession`` on the CPU execution provider
and calls ``func(session, inputs)`` per batch. Install with ``pip install 'clipper-deployers[onnx]'`` (and
``[torch]`` to export PyTorch modules). ``base_image="default"`` is ``<registry>/onnx-container:<version>`` on Docker
and Kubernetes (``clipper images build --only onnx-container`` builds it).
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any

from clipper_core.errors import DeploymentError
from clipper_deployers._deploy import DeployOptions, clipper_image, deploy_dir, endpoint
from clipper_deployers._model_dir import (
    check_predict_function,
    require_framework,
    write_model_dir,
)
from clipper_deployers.onnx_runtime import ONNX, OnnxPredictor

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    from clipper_core.admin import ClipperConnection

logger = logging.getLogger(__name__)

#: What ``base_image="default"`` stands for: ``<registry>/onnx-container:<version>``.
IMAGE_NAME = "onnx-container"
PLUGIN_NAME = "onnx"
#: ``clipper deploy --deployer onnx --model PATH`` passes the model as this argument.
MODEL_PARAMETER = "onnx_model"
EXTRA = "onnx"
ONNX_FILE = "model.onnx"
ONNX_BACKENDS = ("onnxruntime", "caffe2")


def import_onnxruntime() -> ModuleType:
    """``onnxruntime``, or a ClipperException naming ``clipper-deployers[onnx]``."""
    return require_framework("onnxruntime", EXTRA, PLUGIN_NAME)


def onnx_model_bytes(onnx_model: Any) -> bytes:
    """The serialized model: ``onnx_model`` is a path to a file, the bytes themselves, or an ``onnx.ModelProto``.

    :raises ClipperException: anything else, or a file that cannot be read.
    """
    if isinstance(onnx_model, (bytes, bytearray, memoryview)):
        return bytes(onnx_model)
    if isinstance(onnx_model, (str, os.PathLike)):
        try:
            with open(onnx_model, "rb") as f:
                return f.read()
        except OSError as exc:
            msg = f"Cannot read the ONNX model file {os.fspath(onnx_model)!r}: {exc}"
            raise DeploymentError(msg) from exc
    serialize = getattr(onnx_model, "SerializeToString", None)
    if callable(serialize):
        data = serialize()
        if isinstance(data, bytes):
            return data
    kind = f"{type(onnx_model).__module__}.{type(onnx_model).__qualname__}"
    msg = f"onnx_model must be a path to an .onnx file, its bytes or an onnx.ModelProto; got a {kind}"
    raise DeploymentError(msg)


def check_onnx_model(ort: ModuleType, data: bytes) -> None:
    """The model must open in onnxruntime here, so that a broken file is refused before anything is built."""
    try:
        ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:
        msg = f"onnxruntime {ort.__version__} cannot load the ONNX model: {exc}"
        raise DeploymentError(msg) from exc


def prepare_onnx_model(name: str, func: Callable[..., Any], onnx_model: Any) -> str:
    """Check everything, then write the model directory (a new temporary directory; the caller removes it)."""
    ort = import_onnxruntime()
    check_predict_function(func, ("session", "inputs"), PLUGIN_NAME)
    data = onnx_model_bytes(onnx_model)
    check_onnx_model(ort, data)

    def save(directory: str) -> dict[str, Any]:
        with open(os.path.join(directory, ONNX_FILE), "wb") as f:
            f.write(data)
        return {"deployer": PLUGIN_NAME, "format": ONNX, "file": ONNX_FILE, "onnxruntime_version": ort.__version__}

    return write_model_dir(name, OnnxPredictor(func, {}), save)


def _deploy(
    clipper_conn: ClipperConnection, name: str, version: Any, input_type: str, directory: str, options: DeployOptions
) -> None:
    deploy_dir(clipper_conn, name, version, input_type, directory, options, clipper_image(IMAGE_NAME))
    logger.info("ONNX model %s:%s deployed", name, version)


def deploy_onnx_model(
    clipper_conn: ClipperConnection,
    name: str,
    version: Any,
    input_type: str,
    func: Callable[..., Any],
    onnx_model: Any,
    base_image: str = "default",
    labels: list[str] | None = None,
    registry: str | None = None,
    num_replicas: int = 1,
    batch_size: int = -1,
    pkgs_to_install: list[str] | None = None,
) -> None:
    """Deploy ``func(session, inputs)`` (one output per input) with ``onnx_model`` as ``name:version``.

    :raises ClipperException: bad input (before anything is built) or any build or deploy error.
    """
    directory = prepare_onnx_model(name, func, onnx_model)
    options = DeployOptions(base_image, labels, registry, num_replicas, batch_size, pkgs_to_install)
    _deploy(clipper_conn, name, version, input_type, directory, options)


#: The registry facade calls ``deployer.deploy(...)``.
deploy = deploy_onnx_model


def create_endpoint(
    clipper_conn: ClipperConnection,
    name: str,
    input_type: str,
    func: Callable[..., Any],
    onnx_model: Any,
    default_output: str = "None",
    version: Any = 1,
    slo_micros: int = 3000000,
    labels: list[str] | None = None,
    registry: str | None = None,
    base_image: str = "default",
    num_replicas: int = 1,
    batch_size: int = -1,
    pkgs_to_install: list[str] | None = None,
) -> None:
    """Register app ``name``, deploy the ONNX model as model ``name`` and link the two (bad input registers nothing)."""
    directory = prepare_onnx_model(name, func, onnx_model)
    options = DeployOptions(base_image, labels, registry, num_replicas, batch_size, pkgs_to_install)
    endpoint(
        clipper_conn,
        name,
        input_type,
        default_output,
        slo_micros,
        lambda: _deploy(clipper_conn, name, version, input_type, directory, options),
        directory,
    )


def export_pytorch_model(pytorch_model: Any, inputs: Any) -> bytes:
    """``pytorch_model`` exported to ONNX bytes with ``inputs`` (a tensor or a tuple of tensors) as the example;
    the first dimension of every input and output is dynamic (the batch).

    :raises ClipperException: torch is missing, ``pytorch_model`` is not a module, or the export fails.
    """
    from clipper_deployers.pytorch import check_pytorch_model, import_torch

    torch = import_torch()
    check_pytorch_model(torch, pytorch_model)
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    if not args or not all(isinstance(a, torch.Tensor) for a in args):
        msg = "inputs must be an example input of the model: a torch.Tensor or a tuple of them"
        raise DeploymentError(msg)
    try:
        pytorch_model.eval()
        with torch.no_grad():
            out = pytorch_model(*args)
        n_out = len(out) if isinstance(out, (tuple, list)) else 1
        input_names = [f"input{i}" for i in range(len(args))]
        output_names = [f"output{i}" for i in range(n_out)]
        dynamic = {n: {0: "batch"} for n in (*input_names, *output_names)}
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.onnx.export(
                pytorch_model,
                args,
                buf,
                dynamo=False,
                export_params=True,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic,
            )
    except Exception as exc:
        msg = f"Error serializing PyTorch model to ONNX: {exc}"
        raise DeploymentError(msg) from exc
    return buf.getvalue()


def _check_backend(onnx_backend: str) -> None:
    if onnx_backend not in ONNX_BACKENDS:
        msg = f"{onnx_backend} ONNX backend is not currently supported (use one of: {', '.join(ONNX_BACKENDS)})"
        raise DeploymentError(msg)
    if onnx_backend == "caffe2":
        logger.warning("The caffe2 ONNX backend no longer exists; the model is served with onnxruntime")


def deploy_pytorch_model(
    clipper_conn: ClipperConnection,
    name: str,
    version: Any,
    input_type: str,
    inputs: Any,
    func: Callable[..., Any],
    pytorch_model: Any,
    base_image: str = "default",
    labels: list[str] | None = None,
    registry: str | None = None,
    num_replicas: int = 1,
    onnx_backend: str = "onnxruntime",
    batch_size: int = -1,
    pkgs_to_install: list[str] | None = None,
) -> None:
    """The original's entry point: export ``pytorch_model`` to ONNX (``inputs`` is an example input) and deploy it
    with ``func(session, inputs)``."""
    _check_backend(onnx_backend)
    import_onnxruntime()
    check_predict_function(func, ("session", "inputs"), PLUGIN_NAME)
    deploy_onnx_model(
        clipper_conn,
        name,
        version,
        input_type,
        func,
        export_pytorch_model(pytorch_model, inputs),
        base_image,
        labels,
        registry,
        num_replicas,
        batch_size,
        pkgs_to_install,
    )


def create_pytorch_endpoint(
    clipper_conn: ClipperConnection,
    name: str,
    input_type: str,
    inputs: Any,
    func: Callable[..., Any],
    pytorch_model: Any,
    default_output: str = "None",
    version: Any = 1,
    slo_micros: int = 3000000,
    labels: list[str] | None = None,
    registry: str | None = None,
    base_image: str = "default",
    num_replicas: int = 1,
    onnx_backend: str = "onnxruntime",
    batch_size: int = -1,
    pkgs_to_install: list[str] | None = None,
) -> None:
    """Register app ``name``, deploy ``pytorch_model`` exported to ONNX as model ``name`` and link the two."""
    _check_backend(onnx_backend)
    import_onnxruntime()
    check_predict_function(func, ("session", "inputs"), PLUGIN_NAME)
    create_endpoint(
        clipper_conn,
        name,
        input_type,
        func,
        export_pytorch_model(pytorch_model, inputs),
        default_output,
        version,
        slo_micros,
        labels,
        registry,
        base_image,
        num_replicas,
        batch_size,
        pkgs_to_install,
    )
