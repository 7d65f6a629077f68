"""Compatibility path of the Python closure deployer (``clipper_deployers.python`` in ``clipper-deployers``)."""

from __future__ import annotations

from clipper_deployers.python import (
    PLUGIN_NAME,
    create_endpoint,
    deploy,
    deploy_python_closure,
    save_python_function,
)

__all__ = ["PLUGIN_NAME", "create_endpoint", "deploy", "deploy_python_closure", "save_python_function"]
