"""Who may register as a model replica on the query frontend's RPC port.

Anyone who can open a TCP connection to the RPC port can send NewContainer and would then be sent queries (and could
answer them). With admission ``token`` the frontend registers a replica only when its NewContainer carries the
cluster's RPC token in the optional JSON status frame (``{"status": "ready", "token": "..."}``, see
:mod:`clipper_core.rpc.frames`); our runtime sends ``$CLIPPER_RPC_TOKEN`` there. Admission ``open`` registers every
replica, as the original does: the compatible mode for containers written for the original, which send no status
frame (only safe when nobody untrusted can reach the RPC port).

The mode comes from ``--rpc-admission`` or ``$CLIPPER_RPC_ADMISSION``; when neither is given it is ``token`` if a
token is configured (clusters started by our container managers) and ``open`` otherwise.
"""

from __future__ import annotations

import hmac
import logging
import sys
from collections.abc import Mapping

from clipper_core.errors import ClipperException
from clipper_core.secrets import ENV_RPC_TOKEN, env_secret

logger = logging.getLogger(__name__)

ENV_RPC_ADMISSION = "CLIPPER_RPC_ADMISSION"
TOKEN = "token"
OPEN = "open"
MODES = (TOKEN, OPEN)
#: Key of the token in NewContainer's JSON status frame.
STATUS_TOKEN_KEY = "token"
#: Refused connections remembered (so each is logged once); beyond this the oldest are forgotten.
MAX_REMEMBERED = 10_000


def required_token(mode: str | None = None, token: str | None = None) -> str | None:
    """The token replicas must present, or ``None`` for open admission.

    ``mode`` and ``token`` default to ``$CLIPPER_RPC_ADMISSION`` and ``$CLIPPER_RPC_TOKEN``.

    :raises ClipperException: an unknown mode, or ``token`` admission without a token.
    """
    mode = (mode or env_secret(ENV_RPC_ADMISSION) or "").strip().lower() or None
    token = token or env_secret(ENV_RPC_TOKEN)
    if mode is None:
        mode = TOKEN if token else OPEN
    if mode not in MODES:
        msg = f"Unknown RPC admission {mode!r}: use 'token' (replicas must send the cluster's RPC token) or 'open'"
        raise ClipperException(msg)
    if mode == OPEN:
        return None
    if not token:
        msg = (
            f"RPC admission 'token' needs the cluster's RPC token in ${ENV_RPC_TOKEN}; set it, or choose "
            f"--rpc-admission open (${ENV_RPC_ADMISSION}=open) to accept replicas without one"
        )
        raise ClipperException(msg)
    return token


def with_token(status: Mapping[str, object], token: str | None) -> dict[str, object]:
    """A NewContainer status object carrying ``token`` (unchanged when there is none)."""
    out = dict(status)
    if token:
        out[STATUS_TOKEN_KEY] = token
    return out


def without_token(status: Mapping[str, object] | None) -> dict[str, object]:
    """The status object as it may be stored or shown: without the token."""
    return {k: v for k, v in (status or {}).items() if k != STATUS_TOKEN_KEY}


class Admission:
    """Decides on each NewContainer; refusals are logged once per connection."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self._refused: dict[bytes, None] = {}  # insertion-ordered set of connection identities

    @property
    def mode(self) -> str:
        return OPEN if self.token is None else TOKEN

    def admits(self, identity: bytes, name: str, version: str, status: Mapping[str, object] | None) -> bool:
        if self.token is None:
            return True
        offered = (status or {}).get(STATUS_TOKEN_KEY)
        if isinstance(offered, str) and hmac.compare_digest(offered.encode(), self.token.encode()):
            self._refused.pop(identity, None)
            return True
        if identity not in self._refused:
            if len(self._refused) >= MAX_REMEMBERED:
                self._refused.pop(next(iter(self._refused)))
            self._refused[identity] = None
            logger.warning(
                "refused replica %s:%s on connection %r: its registration carries %s RPC token (admission 'token'); "
                "it gets no queries. Containers written for the original Clipper need --rpc-admission open",
                name,
                version,
                identity,
                "a wrong" if offered else "no",
            )
        return False

    def refused(self, identity: bytes) -> bool:
        return identity in self._refused

    def forget(self, identity: bytes) -> None:
        self._refused.pop(identity, None)


def admission_or_exit(mode: str | None) -> Admission:
    """The :class:`Admission` of ``--rpc-admission`` ``mode``; exits with the reason when it cannot be satisfied."""
    try:
        admission = Admission(required_token(mode))
    except ClipperException as exc:
        print(f"error: {exc.msg}", file=sys.stderr)
        raise SystemExit(2) from exc
    logger.info("RPC admission: %s", admission.mode)
    return admission
