"""The model-container runtime: ``python -m clipper_core.container`` serves a Python closure from ``func.pkl``.

``ModelContainerBase`` and ``RPCService`` keep the original ``rpc`` module's API for hand-written containers.
"""

from __future__ import annotations

from clipper_core.container.base import ModelContainerBase, RPCService
from clipper_core.container.config import ConfigError, ContainerConfig
from clipper_core.container.runtime import ContainerRuntime, PredictionError, describe_exception, to_outputs

__all__ = [
    "ConfigError",
    "ContainerConfig",
    "ContainerRuntime",
    "ModelContainerBase",
    "PredictionError",
    "RPCService",
    "describe_exception",
    "to_outputs",
]
