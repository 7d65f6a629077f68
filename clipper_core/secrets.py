"""The secrets of one cluster: the Redis password, the RPC admission token and the management bearer token.

``start_clipper`` generates them (:func:`generate`, ``secrets.token_urlsafe``), unless the user brings the password of
an external Redis. The local manager keeps them in ``CLUSTER_DIR/secrets.json`` with mode 0600 (only the cluster
directory's owner can read them) and the supervisor hands each process only what it needs, through environment
variables, never on a command line (which every user sees in ``ps``):

========================  ==================================  ==========================================
variable                  read by                             protects
========================  ==================================  ==========================================
``CLIPPER_REDIS_PASSWORD``  both frontends (``AUTH`` to Redis)  every byte of cluster state, Redis' files
``CLIPPER_RPC_TOKEN``       query frontend, model replicas      registration of replicas on the RPC port
``CLIPPER_MANAGEMENT_TOKEN``  management frontend (when on)     the ``/admin/*`` API
========================  ==================================  ==========================================

The cluster's own redis-server reads its password from a 0600 configuration file (:func:`write_redis_config`).
See docs/security.md.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SECRETS_FILE = "secrets.json"
REDIS_CONFIG_FILE = "redis.conf"
ENV_REDIS_PASSWORD = "CLIPPER_REDIS_PASSWORD"
ENV_RPC_TOKEN = "CLIPPER_RPC_TOKEN"
ENV_MANAGEMENT_TOKEN = "CLIPPER_MANAGEMENT_TOKEN"
#: Every secret-carrying variable: a process gets only those it needs, never one inherited by accident.
SECRET_ENV_VARS = (ENV_REDIS_PASSWORD, ENV_RPC_TOKEN, ENV_MANAGEMENT_TOKEN)
TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True)
class ClusterSecrets:
    """``redis_password`` is ``None`` for an external Redis without a password."""

    redis_password: str | None
    rpc_token: str
    management_token: str


def generate(redis_password: str | None = None, external_redis: bool = False) -> ClusterSecrets:
    """Fresh secrets; an external Redis keeps the password the user gave (or none)."""
    password = redis_password if (external_redis or redis_password) else new_token()
    return ClusterSecrets(password or None, new_token(), new_token())


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable and writable by its owner only (created 0600, renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)  # whatever the umask
    os.replace(tmp, path)


def write_secrets(cluster_dir: Path, value: ClusterSecrets) -> Path:
    path = Path(cluster_dir) / SECRETS_FILE
    write_private(path, json.dumps(asdict(value), indent=2) + "\n")
    return path


def read_secrets(cluster_dir: Path) -> ClusterSecrets | None:
    """The secrets of the cluster in ``cluster_dir``; ``None`` when there are none (or they cannot be read)."""
    path = Path(cluster_dir) / SECRETS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ClusterSecrets(data.get("redis_password") or None, str(data["rpc_token"]), str(data["management_token"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("cannot read the cluster secrets in %s: %s", path, exc)
        return None


def redis_password(cluster_dir: Path) -> str | None:
    found = read_secrets(cluster_dir)
    return found.redis_password if found else None


def write_redis_config(path: Path, password: str | None) -> Path:
    """A redis-server configuration file (mode 0600) that sets ``requirepass``; pass it as redis-server's first
    argument (redis-server reads it before its command-line options)."""
    escaped = (password or "").replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    lines = [f'requirepass "{escaped}"'] if password else []
    write_private(Path(path), "\n".join(lines) + "\n")
    return Path(path)


def without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` without any of :data:`SECRET_ENV_VARS` (what a child inherits by default)."""
    return {k: v for k, v in environ.items() if k not in SECRET_ENV_VARS}


def env_secret(name: str) -> str | None:
    """A secret from the environment (empty means unset)."""
    return os.environ.get(name) or None


def bearer_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <token>`` (compared in constant time)."""
    scheme, _, offered = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), token.encode())
