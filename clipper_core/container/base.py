"""Compatibility API of the original ``containers/python/rpc.py``.

Write a model class, then call ``RPCService().start(model)``.

Example::

    from clipper_core.container import ModelContainerBase, RPCService

    class Sum(ModelContainerBase):
        def predict_doubles(self, inputs):
            return [str(x.sum()) for x in inputs]

    RPCService().start(Sum())  # reads CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION, CLIPPER_INPUT_TYPE, ... from the env
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from clipper_core.container.config import ConfigError, ContainerConfig

logger = logging.getLogger(__name__)


class ModelContainerBase:
    """Override the ``predict_<type>`` method for your input type (or ``predict`` for a plugin input type).

    Each receives one whole batch and returns one output per input (a list; items are converted with ``str``).
    """

    def predict_ints(self, inputs: Any) -> list[str]:
        msg = f"{type(self).__name__} does not implement predict_ints"
        raise NotImplementedError(msg)

    def predict_floats(self, inputs: Any) -> list[str]:
        msg = f"{type(self).__name__} does not implement predict_floats"
        raise NotImplementedError(msg)

    def predict_doubles(self, inputs: Any) -> list[str]:
        msg = f"{type(self).__name__} does not implement predict_doubles"
        raise NotImplementedError(msg)

    def predict_bytes(self, inputs: Any) -> list[str]:
        msg = f"{type(self).__name__} does not implement predict_bytes"
        raise NotImplementedError(msg)

    def predict_strings(self, inputs: Any) -> list[str]:
        msg = f"{type(self).__name__} does not implement predict_strings"
        raise NotImplementedError(msg)

    def predict(self, inputs: Any) -> list[str]:
        msg = f"{type(self).__name__} does not implement predict"
        raise NotImplementedError(msg)


class RPCService:
    """Runs a model object as a replica.

    As in the original's develop branch, the constructor reads the ``CLIPPER_*`` environment (and exits with
    status 1 when ``CLIPPER_MODEL_NAME`` or ``CLIPPER_MODEL_VERSION`` is missing) unless ``read_config`` is false;
    the older ``start(model, host, port, model_name, model_version, input_type)`` form is accepted too.
    ``collect_metrics`` is accepted for compatibility and ignored.
    """

    def __init__(self, collect_metrics: bool = True, read_config: bool = True) -> None:
        self.collect_metrics = collect_metrics
        self.config: ContainerConfig | None = None
        self.runtime: Any = None
        if read_config:
            try:
                self.config = ContainerConfig.from_env()
            except ConfigError as exc:
                print(f"ERROR: {exc}", file=sys.stderr, flush=True)
                sys.exit(1)

    def start(
        self,
        model: Any,
        host: str | None = None,
        port: int | None = None,
        model_name: str | None = None,
        model_version: str | int | None = None,
        input_type: str | None = None,
    ) -> None:
        """Serve ``model`` until SIGTERM/SIGINT (when called from the main thread) or :meth:`stop`."""
        from clipper_core.container.runtime import ContainerRuntime, predict_method, resolve_input_type

        config = self.config
        if config is None:
            if model_name is None or model_version is None:
                msg = "RPCService(read_config=False).start() needs model_name and model_version"
                raise ValueError(msg)
            config = ContainerConfig(model_name=model_name, model_version=str(model_version), ready_file=None)
        overrides = {"ip": host, "port": port, "model_name": model_name, "input_type": input_type}
        for key, value in overrides.items():
            if value is not None:
                setattr(config, key, value)
        if model_version is not None:
            config.model_version = str(model_version)
        it = resolve_input_type(config.input_type)
        self.runtime = ContainerRuntime.from_config(config, predict_method(model, it))
        self.runtime.run(handle_signals=threading.current_thread() is threading.main_thread())

    def stop(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
