"""The model-container runtime's settings, read from the environment as the original containers read them."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from clipper_core.secrets import ENV_RPC_TOKEN

logger = logging.getLogger(__name__)

DEFAULT_IP = "127.0.0.1"
DEFAULT_PORT = 7000
DEFAULT_INPUT_TYPE = "doubles"
DEFAULT_MODEL_PATH = "/model"
DEFAULT_READY_FILE = "/model_is_ready.check"
#: The original's SOCKET_POLLING_TIMEOUT_MILLIS: an idle container heartbeats this often.
DEFAULT_HEARTBEAT_INTERVAL_S = 5.0
#: The original's SOCKET_ACTIVITY_TIMEOUT_MILLIS: after this much silence the socket is replaced.
DEFAULT_ACTIVITY_TIMEOUT_S = 30.0
#: A predict call running longer than this ends the process, so that it is restarted. Twice the frontend's default
#: silence limit (30 s, after which it stops sending to a replica that does not answer), so a model that is slow but
#: was served before is never cut off.
DEFAULT_PREDICT_TIMEOUT_S = 60.0


class ConfigError(ValueError):
    """A required environment variable is missing or a value cannot be parsed."""


def _positive_float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        msg = f"{key} must be a number of seconds, got {raw!r}"
        raise ConfigError(msg) from None
    if not value > 0:
        msg = f"{key} must be positive, got {raw!r}"
        raise ConfigError(msg)
    return value


@dataclass
class ContainerConfig:
    """Everything a replica needs to connect and register.

    ``ready_file`` ``None`` (env ``CLIPPER_READY_FILE`` set to an empty string) disables the readiness file.
    """

    model_name: str
    model_version: str
    input_type: str = DEFAULT_INPUT_TYPE
    ip: str = DEFAULT_IP
    port: int = DEFAULT_PORT
    model_path: str = DEFAULT_MODEL_PATH
    ready_file: str | None = DEFAULT_READY_FILE
    heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S
    activity_timeout_s: float = DEFAULT_ACTIVITY_TIMEOUT_S
    predict_timeout_s: float = DEFAULT_PREDICT_TIMEOUT_S
    #: ``CLIPPER_RPC_TOKEN``: sent with the registration, required by frontends with RPC admission "token"
    rpc_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ContainerConfig:
        """Read ``CLIPPER_*`` variables.

        :raises ConfigError: ``CLIPPER_MODEL_NAME`` / ``CLIPPER_MODEL_VERSION`` missing, or a malformed number.
        """
        env = os.environ if environ is None else environ
        required: dict[str, str] = {}
        for key in ("CLIPPER_MODEL_NAME", "CLIPPER_MODEL_VERSION"):
            value = env.get(key)
            if value is None or value == "":
                msg = f"{key} environment variable must be set"
                raise ConfigError(msg)
            required[key] = value
        raw_port = env.get("CLIPPER_PORT") or str(DEFAULT_PORT)
        try:
            port = int(raw_port)
        except ValueError:
            msg = f"CLIPPER_PORT must be an integer, got {raw_port!r}"
            raise ConfigError(msg) from None
        if not 0 < port < 65536:
            msg = f"CLIPPER_PORT must be between 1 and 65535, got {port}"
            raise ConfigError(msg)
        ready = env.get("CLIPPER_READY_FILE", DEFAULT_READY_FILE)
        return cls(
            model_name=required["CLIPPER_MODEL_NAME"],
            model_version=required["CLIPPER_MODEL_VERSION"],
            input_type=(env.get("CLIPPER_INPUT_TYPE") or DEFAULT_INPUT_TYPE).strip(),
            ip=env.get("CLIPPER_IP") or DEFAULT_IP,
            port=port,
            model_path=env.get("CLIPPER_MODEL_PATH") or DEFAULT_MODEL_PATH,
            ready_file=ready or None,
            heartbeat_interval_s=_positive_float(env, "CLIPPER_HEARTBEAT_INTERVAL_S", DEFAULT_HEARTBEAT_INTERVAL_S),
            activity_timeout_s=_positive_float(env, "CLIPPER_ACTIVITY_TIMEOUT_S", DEFAULT_ACTIVITY_TIMEOUT_S),
            predict_timeout_s=_positive_float(env, "CLIPPER_PREDICT_TIMEOUT_S", DEFAULT_PREDICT_TIMEOUT_S),
            rpc_token=env.get(ENV_RPC_TOKEN) or None,
        )
