"""The frontends' settings: frozen dataclasses built once from the command line in each process's entry point.

Every field declares its own command-line flags (with the original's spellings as aliases) and help, so
``python -m clipper_frontend.query``, ``python -m clipper_frontend.management`` and the ``clipper query-frontend`` /
``clipper management-frontend`` commands accept exactly the same options from one list. This module imports nothing
heavy: ``clipper --help`` loads it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from clipper_core.container_manager import CLIPPER_MANAGEMENT_PORT, DEFAULT_CACHE_SIZE, REDIS_PORT

S = TypeVar("S", bound="_Settings")

MIB = 1024 * 1024


def _opt(default: Any, *flags: str, help: str, **argparse_kw: Any) -> Any:  # noqa: A002 - argparse's word
    """A dataclass field with its command-line flags (the first is the canonical one) and help text."""
    return field(default=default, metadata={"flags": flags, "help": help, "argparse": argparse_kw})


def _default_http_server() -> str:
    return "fast" if importlib.util.find_spec("httptools") is not None else "tornado"


class _Settings:
    """Shared by both settings classes: the argparse options are generated from the dataclass fields."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add one option per field to ``parser`` (the defaults shown in ``--help`` are the fields' defaults)."""
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            meta = f.metadata
            kw = dict(meta["argparse"])
            if f.default is not dataclasses.MISSING and f.type in ("int", "float"):
                kw.setdefault("type", int if f.type == "int" else float)
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            text = meta["help"]
            if text is not argparse.SUPPRESS:
                text = f"{text} (default: {default})"
            parser.add_argument(*meta["flags"], dest=f.name, default=default, help=text, **kw)
        for flags in cls._ignored_flags():
            parser.add_argument(*flags, dest=f"_ignored_{flags[0].lstrip('-')}", default=None, help=argparse.SUPPRESS)

    @classmethod
    def _ignored_flags(cls) -> tuple[tuple[str, ...], ...]:
        return ()

    @classmethod
    def from_namespace(cls: type[S], args: argparse.Namespace) -> S:
        """The settings in ``args`` (a namespace may hold more, e.g. the ``clipper`` command's own options)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})  # type: ignore[arg-type]

    @classmethod
    def from_argv(cls: type[S], argv: Sequence[str] | None = None, *, prog: str, description: str) -> S:
        parser = argparse.ArgumentParser(prog=prog, description=description)
        cls.add_arguments(parser)
        return cls.from_namespace(parser.parse_args(argv))


@dataclass(frozen=True)
class QuerySettings(_Settings):
    """Options of the query frontend (REST on ``port``, model-container RPC on ``rpc_port``)."""

    host: str = _opt("127.0.0.1", "--host", help="address to bind REST and RPC")
    port: int = _opt(1337, "--port", help="REST port")
    rpc_port: int = _opt(7000, "--rpc-port", "--rpc_service_port", help="RPC port model containers connect to")
    redis_ip: str = _opt("127.0.0.1", "--redis-ip", "--redis_ip", help="Redis host")
    redis_port: int = _opt(REDIS_PORT, "--redis-port", "--redis_port", help="Redis port")
    cache_size: int = _opt(
        DEFAULT_CACHE_SIZE,
        "--cache-size",
        "--prediction_cache_size",
        help="prediction cache size in bytes; 0 disables the cache",
    )
    max_in_flight: int = _opt(2, "--max-in-flight", help="batches in flight per replica")
    activity_timeout: float = _opt(30.0, "--activity-timeout", help="seconds of silence before a replica is dropped")
    timeout_content: float = _opt(
        300.0,
        "--timeout-content",
        "--timeout_content",
        help="seconds an idle keep-alive HTTP connection stays open",
    )
    http_server: str = _opt(
        _default_http_server(),
        "--http-server",
        choices=("fast", "tornado"),
        help="REST server: 'fast' (asyncio + httptools, the default when httptools is installed) or 'tornado'",
    )
    log_level: str = _opt("INFO", "--log-level", help="logging level")
    rpc_admission: str | None = _opt(
        None,
        "--rpc-admission",
        choices=("token", "open"),
        help="'token': register only replicas that send the cluster's RPC token ($CLIPPER_RPC_TOKEN); 'open': any "
        "replica, as the original. None: $CLIPPER_RPC_ADMISSION, else 'token' when a token is set",
    )
    # -- limits: what one client can hold of the frontend (docs/architecture.md, "Limits") --------------------
    max_connections: int = _opt(
        10_000,
        "--max-connections",
        help="open REST connections; beyond it a new connection gets a 503 and is closed at once "
        "(capped below the process's open-file limit)",
    )
    header_timeout: float = _opt(
        10.0,
        "--header-timeout",
        help="seconds a request has to send its request line and headers, counted from its first byte (from the "
        "connection's start for the first request); not restarted by further bytes",
    )
    body_timeout: float = _opt(
        60.0, "--body-timeout", help="seconds a request has to send its whole body, counted from the end of its headers"
    )
    max_body_bytes: int = _opt(64 * MIB, "--max-body-bytes", help="largest request body; a larger one gets a 413")
    max_pending_bytes: int = _opt(
        256 * MIB,
        "--max-pending-bytes",
        help="request-body bytes held at once across all connections (received or being received, not yet "
        "answered); a request beyond it gets a 503",
    )
    max_batch_items: int = _opt(
        10_000, "--max-batch-items", help="longest input_batch of one predict request; a longer one gets a 413"
    )
    write_buffer_high_water: int = _opt(
        1 * MIB,
        "--write-buffer-high-water",
        help="bytes of unsent answers per connection beyond which the frontend stops reading (and answering) that "
        "connection's requests until the client reads",
    )

    @classmethod
    def _ignored_flags(cls) -> tuple[tuple[str, ...], ...]:
        return (("--thread_pool_size", "--timeout_request"),)  # the original's, accepted and ignored

    @classmethod
    def parse(cls, argv: Sequence[str] | None = None) -> QuerySettings:
        return cls.from_argv(argv, prog="python -m clipper_frontend.query", description=QUERY_DESCRIPTION)


@dataclass(frozen=True)
class ManagementSettings(_Settings):
    """Options of the management frontend (the ``/admin`` REST API)."""

    host: str = _opt("0.0.0.0", "--host", help="address to bind (0.0.0.0 as the original)")  # noqa: S104
    port: int = _opt(CLIPPER_MANAGEMENT_PORT, "--port", help="port to bind")
    redis_ip: str = _opt("localhost", "--redis-ip", "--redis_ip", help="Redis host")
    redis_port: int = _opt(REDIS_PORT, "--redis-port", "--redis_port", help="Redis port")
    log_level: str = _opt("INFO", "--log-level", help="logging level")

    @classmethod
    def parse(cls, argv: Sequence[str] | None = None) -> ManagementSettings:
        return cls.from_argv(argv, prog="python -m clipper_frontend.management", description=MANAGEMENT_DESCRIPTION)


QUERY_DESCRIPTION = (
    "Clipper query frontend: POST /<app>/predict and /<app>/update, GET /metrics and /healthz on --port; model "
    "containers connect to --rpc-port"
)
MANAGEMENT_DESCRIPTION = "Clipper management frontend: the /admin REST API (port 1338)"
