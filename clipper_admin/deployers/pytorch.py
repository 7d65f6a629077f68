"""Compatibility path of the PyTorch deployer (``clipper_deployers.pytorch`` in ``clipper-deployers[torch]``)."""

from __future__ import annotations

from clipper_deployers.pytorch import PLUGIN_NAME, create_endpoint, deploy, deploy_pytorch_model

__all__ = ["PLUGIN_NAME", "create_endpoint", "deploy", "deploy_pytorch_model"]
