"""The cluster secrets of a Docker cluster: which container gets which, and how ``connect()`` finds them again.

``start_clipper`` generates them (:func:`clipper_core.secrets.generate`) and hands each container only what it needs,
in its environment, never on its command line or in a label:

=====================  ==========================================================
container              environment
=====================  ==========================================================
Redis                  ``CLIPPER_REDIS_PASSWORD`` (written to redis-server's stdin as ``requirepass``)
management frontend    ``CLIPPER_REDIS_PASSWORD``; ``CLIPPER_MANAGEMENT_TOKEN`` with ``management_auth``
query frontend         ``CLIPPER_REDIS_PASSWORD``, ``CLIPPER_RPC_TOKEN``
model replicas         ``CLIPPER_RPC_TOKEN``
=====================  ==========================================================

The environments of the containers are where the secrets are kept: ``connect()`` (from any process that reaches
the daemon) reads them back from the frontend containers (``docker inspect``). Whoever can do that can also
``docker exec`` into the containers, so keeping a copy elsewhere would protect nothing (docs/security.md, "Docker").
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clipper_core.secrets import ENV_MANAGEMENT_TOKEN, ENV_REDIS_PASSWORD, ENV_RPC_TOKEN, ClusterSecrets

logger = logging.getLogger(__name__)

#: The RPC admission mode of the query frontend (not a secret: connect() reads it back from this label).
RPC_ADMISSION_LABEL = "ai.clipper.query_frontend.rpc.admission"


@dataclass(frozen=True)
class DockerSecrets:
    """The secrets a Docker cluster runs with; ``management_token`` is ``None`` when management auth is off, and
    ``redis_password`` for an external Redis without one. The representation never shows them."""

    redis_password: str | None
    rpc_token: str
    management_token: str | None

    @classmethod
    def generated(cls, value: ClusterSecrets, management_auth: bool) -> DockerSecrets:
        return cls(value.redis_password, value.rpc_token, value.management_token if management_auth else None)

    def __repr__(self) -> str:
        shown = {k: "<set>" if v else None for k, v in vars(self).items()}
        return f"DockerSecrets({shown})"

    def redis_env(self) -> dict[str, str]:
        return {ENV_REDIS_PASSWORD: self.redis_password} if self.redis_password else {}

    def management_env(self) -> dict[str, str]:
        token = {ENV_MANAGEMENT_TOKEN: self.management_token} if self.management_token else {}
        return {**self.redis_env(), **token}

    def query_env(self) -> dict[str, str]:
        return {**self.redis_env(), ENV_RPC_TOKEN: self.rpc_token}

    def replica_env(self) -> dict[str, str]:
        return {ENV_RPC_TOKEN: self.rpc_token}


def container_env(container: Any) -> dict[str, str]:
    """The environment a container was created with (``docker inspect``: ``Config.Env``)."""
    entries = (container.attrs.get("Config") or {}).get("Env") or []
    return dict(entry.partition("=")[::2] for entry in entries)


def read_secrets(query: Any, mgmt: Any | None) -> DockerSecrets | None:
    """The secrets of a running cluster, from its query (and management) frontend containers; ``None`` for a
    cluster started without them (by an earlier version of this manager)."""
    env = container_env(query)
    token = env.get(ENV_RPC_TOKEN)
    if not token:
        return None
    mgmt_token = container_env(mgmt).get(ENV_MANAGEMENT_TOKEN) if mgmt is not None else None
    return DockerSecrets(env.get(ENV_REDIS_PASSWORD) or None, token, mgmt_token or None)


def with_env(kwargs: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``containers.run`` kwargs whose ``environment`` (the user's extra kwargs' included) also holds ``env``."""
    given = kwargs.get("environment") or {}
    if isinstance(given, (list, tuple)):  # the SDK also takes ["K=V", ...]
        given = dict(str(e).partition("=")[::2] for e in given)
    return {**kwargs, "environment": {**given, **env}}


def redis_command(port: int, bind: str) -> list[str]:
    """redis-server with ``requirepass`` from ``$CLIPPER_REDIS_PASSWORD``, read as configuration from stdin (a
    here-document), so the password is on no command line; it refuses to start without one. Protected mode stays
    on: should the password ever be missing, Redis would still refuse every client that is not on loopback."""
    options = ["--port", str(port), "--bind", bind, "--protected-mode", "yes", "--save", "", "--appendonly", "no"]
    script = (
        f'[ -n "${ENV_REDIS_PASSWORD}" ] || {{ echo "{ENV_REDIS_PASSWORD} is not set: Redis would have no '
        'password" >&2; exit 1; }\n'
        f"exec redis-server - {shlex.join(options)} <<EOF\n"
        f'requirepass "${ENV_REDIS_PASSWORD}"\n'
        "EOF\n"
    )
    return ["sh", "-c", script]
