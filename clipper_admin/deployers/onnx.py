"""Compatibility path of the ONNX deployer (``clipper_deployers.onnx`` in ``clipper-deployers[onnx]``)."""

from __future__ import annotations

from clipper_deployers.onnx import (
    PLUGIN_NAME,
    create_endpoint,
    create_pytorch_endpoint,
    deploy,
    deploy_onnx_model,
    deploy_pytorch_model,
    export_pytorch_model,
)

__all__ = [
    "PLUGIN_NAME",
    "create_endpoint",
    "create_pytorch_endpoint",
    "deploy",
    "deploy_onnx_model",
    "deploy_pytorch_model",
    "export_pytorch_model",
]
