"""The PyTorch deployer (reference §6.5): deploy ``func(model, inputs)`` with a ``torch.nn.Module``.

Same functions, parameters and defaults as the original's ``clipper_admin.deployers.pytorch``. ``base_image="default"``
is ``<registry>/pytorch-container:<version>`` on Docker and Kubernetes (``clipper images build --only
pytorch-container`` builds it); local clusters run the model with the deploying interpreter, so torch must be
installed there: ``pip install 'clipper-deployers[torch]'``.

The module is saved in the model directory in the first of these formats that keeps everything ``func`` might
call (a class with public methods other than ``forward`` is always pickled, since the compiled formats keep only
``forward``):

* a ``torch.export`` program (``pytorch_model.pt2``) when ``example_inputs`` (an input batch) is given, exported in
  eval mode with a dynamic batch dimension and checked against the module on that batch;
* TorchScript (``pytorch_model.pt``, ``torch.jit.script``);
* a pickled module with its weights (``pytorch_model.pkl``, cloudpickle; a class from a non-installed source file is
  pickled by value).

``serialization="export"``, ``"torchscript"`` or ``"pickle"`` forces one. The replica loads the model once, on the
CPU, in eval mode, and calls ``func(model, inputs)`` per batch under ``torch.inference_mode()``.
"""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any

from clipper_core.errors import ClipperException, DeploymentError
from clipper_deployers._deploy import DeployOptions, clipper_image, deploy_dir, endpoint
from clipper_deployers._model_dir import (
    check_predict_function,
    dump_by_value,
    require_framework,
    write_model_dir,
)
from clipper_deployers.pytorch_runtime import EXPORT, PICKLE, TORCHSCRIPT, TorchPredictor

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    from clipper_core.admin import ClipperConnection

logger = logging.getLogger(__name__)

#: What ``base_image="default"`` stands for: ``<registry>/pytorch-container:<version>``.
IMAGE_NAME = "pytorch-container"
PLUGIN_NAME = "pytorch"
#: ``clipper deploy --deployer pytorch --model REF`` passes the object REF names as this argument.
MODEL_PARAMETER = "pytorch_model"
EXTRA = "torch"
TORCHSCRIPT_FILE = "pytorch_model.pt"
PICKLE_FILE = "pytorch_model.pkl"
EXPORT_FILE = "pytorch_model.pt2"
SERIALIZATIONS = ("auto", EXPORT, TORCHSCRIPT, PICKLE)


def import_torch() -> ModuleType:
    """``torch``, or a ClipperException naming ``clipper-deployers[torch]``."""
    return require_framework("torch", EXTRA, PLUGIN_NAME)


def check_pytorch_model(torch: ModuleType, pytorch_model: Any) -> None:
    if not isinstance(pytorch_model, torch.nn.Module):
        kind = f"{type(pytorch_model).__module__}.{type(pytorch_model).__qualname__}"
        msg = f"pytorch_model must be a torch.nn.Module (a TorchScript module is one too), got a {kind}"
        raise DeploymentError(msg)


def _own_methods(torch: ModuleType, model: Any, keep_jit_exported: bool) -> list[str]:
    """Public methods of the module's own classes (not torch's) other than ``forward`` (a compiled module keeps only
    ``forward``; TorchScript also keeps ``@torch.jit.export`` methods, left out with ``keep_jit_exported``)."""
    lost: list[str] = []
    for cls in type(model).__mro__:
        if not issubclass(cls, torch.nn.Module) or cls.__module__.partition(".")[0] == "torch":
            continue
        for attr, value in vars(cls).items():
            if attr.startswith("_") or attr == "forward" or not inspect.isfunction(value):
                continue
            if not keep_jit_exported or getattr(value, "_torchscript_modifier", None) is None:
                lost.append(attr)
    return sorted(set(lost))


def _script(torch: ModuleType, model: Any) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
        return torch.jit.script(model)


def _save_script(torch: ModuleType, scripted: Any, path: str) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
        torch.jit.save(scripted, path)


def _same_outputs(torch: ModuleType, want: Any, got: Any) -> bool:
    if isinstance(want, torch.Tensor):
        return isinstance(got, torch.Tensor) and want.shape == got.shape and torch.allclose(want, got, 1e-5, 1e-6)
    if isinstance(want, (tuple, list)):
        return (
            isinstance(got, (tuple, list))
            and len(want) == len(got)
            and all(_same_outputs(torch, w, g) for w, g in zip(want, got, strict=True))
        )
    return bool(want == got)


def _export(torch: ModuleType, model: Any, example_inputs: Any, path: str) -> None:
    """``torch.export`` the module (in eval mode) with a dynamic first dimension, check it against the module on
    ``example_inputs`` and save it; raises on any failure."""
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    if not args or not all(isinstance(a, torch.Tensor) and a.dim() >= 1 for a in args):
        msg = "example_inputs must be a torch.Tensor, or a tuple of them, whose first dimension is the batch"
        raise DeploymentError(msg)
    # A batch of one would specialise the batch dimension to 1.
    args = tuple(torch.cat([a, a]) if a.shape[0] == 1 else a for a in args)
    was_training = model.training
    model.eval()
    try:
        program = torch.export.export(model, args, dynamic_shapes=tuple({0: torch.export.Dim.AUTO} for _ in args))
        with torch.no_grad():
            same = _same_outputs(torch, model(*args), program.module()(*args))
        if not same:
            msg = "the exported program does not compute what the module does on example_inputs"
            raise ValueError(msg)
        torch.export.save(program, path)
    finally:
        model.train(was_training)


def save_pytorch_model(
    pytorch_model: Any, directory: str, serialization: str = "auto", example_inputs: Any = None
) -> dict[str, Any]:
    """Write ``pytorch_model`` into ``directory``; returns its metadata (``format``, ``file``, versions).

    ``"auto"`` tries ``torch.export`` (with ``example_inputs``), then TorchScript, then a pickled module; a module
    whose class has public methods other than ``forward`` is pickled, since the other two keep only ``forward``.

    :raises ClipperException: ``serialization`` is unknown, or the forced format cannot be written.
    """
    torch = import_torch()
    if serialization not in SERIALIZATIONS:
        msg = f"serialization must be one of {', '.join(SERIALIZATIONS)}; got {serialization!r}"
        raise DeploymentError(msg)
    if serialization == EXPORT and example_inputs is None:
        msg = "serialization='export' needs example_inputs (an input batch of the module)"
        raise DeploymentError(msg)
    kind = f"{type(pytorch_model).__module__}.{type(pytorch_model).__qualname__}"
    metadata: dict[str, Any] = {"deployer": PLUGIN_NAME, "model_class": kind, "torch_version": torch.__version__}
    is_script = isinstance(pytorch_model, torch.jit.ScriptModule)
    if is_script and serialization in (EXPORT, PICKLE):
        msg = f"A TorchScript module cannot be saved with serialization={serialization!r}; use 'auto' or 'torchscript'"
        raise DeploymentError(msg)
    lost = [] if is_script else _own_methods(torch, pytorch_model, keep_jit_exported=True)
    if lost and serialization == "auto":
        logger.info("Saving %s as a pickled module: export and TorchScript would drop %s", kind, ", ".join(lost))
        serialization = PICKLE
    exportable = serialization == EXPORT or not _own_methods(torch, pytorch_model, keep_jit_exported=False)
    if not is_script and example_inputs is not None and serialization in ("auto", EXPORT) and exportable:
        try:
            _export(torch, pytorch_model, example_inputs, os.path.join(directory, EXPORT_FILE))
            return {**metadata, "format": EXPORT, "file": EXPORT_FILE}
        except Exception as exc:
            if serialization == EXPORT or isinstance(exc, ClipperException):
                msg = f"torch.export cannot export the {kind} module: {exc}"
                raise DeploymentError(msg) from exc
            logger.info("Not saving %s with torch.export: %s", kind, exc)
    scripted = pytorch_model if is_script else None
    if scripted is None and serialization in ("auto", TORCHSCRIPT):
        try:
            scripted = _script(torch, pytorch_model)
        except Exception as exc:
            if serialization == TORCHSCRIPT:
                msg = f"torch.jit.script cannot compile the {kind} module: {exc}"
                raise DeploymentError(msg) from exc
            logger.info("Saving %s as a pickled module: torch.jit.script failed (%s)", kind, exc)
    if scripted is not None:
        _save_script(torch, scripted, os.path.join(directory, TORCHSCRIPT_FILE))
        return {**metadata, "format": TORCHSCRIPT, "file": TORCHSCRIPT_FILE}
    try:
        dump_by_value(pytorch_model, os.path.join(directory, PICKLE_FILE), [type(pytorch_model)])
    except Exception as exc:
        msg = f"Could not pickle the {kind} module with cloudpickle: {exc!r}"
        raise DeploymentError(msg) from exc
    return {**metadata, "format": PICKLE, "file": PICKLE_FILE}


def prepare_pytorch_model(
    name: str, func: Callable[..., Any], pytorch_model: Any, serialization: str = "auto", example_inputs: Any = None
) -> str:
    """Check everything, then write the model directory (a new temporary directory; the caller removes it).

    :raises ClipperException: torch is not installed, ``func`` does not take ``(model, inputs)``, or
        ``pytorch_model`` is not a ``torch.nn.Module`` or cannot be saved.
    """
    torch = import_torch()
    check_predict_function(func, ("model", "inputs"), PLUGIN_NAME)
    check_pytorch_model(torch, pytorch_model)
    predictor = TorchPredictor(func, {})

    def save(directory: str) -> dict[str, Any]:
        return save_pytorch_model(pytorch_model, directory, serialization, example_inputs)

    return write_model_dir(name, predictor, save, [type(pytorch_model)])


def _deploy(
    clipper_conn: ClipperConnection, name: str, version: Any, input_type: str, directory: str, options: DeployOptions
) -> None:
    deploy_dir(clipper_conn, name, version, input_type, directory, options, clipper_image(IMAGE_NAME))
    logger.info("PyTorch model %s:%s deployed", name, version)


def deploy_pytorch_model(
    clipper_conn: ClipperConnection,
    name: str,
    version: Any,
    input_type: str,
    func: Callable[..., Any],
    pytorch_model: Any,
    base_image: str = "default",
    labels: list[str] | None = None,
    registry: str | None = None,
    num_replicas: int = 1,
    batch_size: int = -1,
    pkgs_to_install: list[str] | None = None,
    *,
    serialization: str = "auto",
    example_inputs: Any = None,
) -> None:
    """Deploy ``func(model, inputs)`` (a list of outputs, one per input) with ``pytorch_model`` as ``name:version``.

    :param serialization: ``"auto"`` (:func:`save_pytorch_model`), ``"export"``, ``"torchscript"`` or ``"pickle"``.
    :param example_inputs: an input batch (a tensor or a tuple of tensors) for ``torch.export``; the first
        dimension is exported as dynamic.
    :raises ClipperException: bad input (before anything is built) or any build or deploy error.
    """
    directory = prepare_pytorch_model(name, func, pytorch_model, serialization, example_inputs)
    options = DeployOptions(base_image, labels, registry, num_replicas, batch_size, pkgs_to_install)
    _deploy(clipper_conn, name, version, input_type, directory, options)


#: The registry facade calls ``deployer.deploy(...)``.
deploy = deploy_pytorch_model


def create_endpoint(
    clipper_conn: ClipperConnection,
    name: str,
    input_type: str,
    func: Callable[..., Any],
    pytorch_model: Any,
    default_output: str = "None",
    version: Any = 1,
    slo_micros: int = 3000000,
    labels: list[str] | None = None,
    registry: str | None = None,
    base_image: str = "default",
    num_replicas: int = 1,
    batch_size: int = -1,
    pkgs_to_install: list[str] | None = None,
    *,
    serialization: str = "auto",
    example_inputs: Any = None,
) -> None:
    """Register app ``name``, deploy the model as model ``name`` and link the two (bad input registers nothing)."""
    directory = prepare_pytorch_model(name, func, pytorch_model, serialization, example_inputs)
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
