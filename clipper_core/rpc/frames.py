"""RPC protocol v3 frames (ZeroMQ ROUTER in the frontend, DEALER in each container).

Every integer is little-endian and every field is its own ZeroMQ frame. Frontend -> container messages carry the
RPC version; container -> frontend messages do not (as in the original). The leading empty delimiter frame is
included in every list built or parsed here; the ROUTER's identity frame is not.

Two compatible extensions, both ignored by the original frontend and containers:

* a NewContainer message may carry a sixth frame: a JSON object with the replica's status
  (``{"status": "ready"}`` or ``{"status": "error", "error": "..."}``);
* an output string that starts with :data:`ERROR_PREFIX` is a per-query model error, not a prediction.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

__all__ = [
    "RPC_VERSION",
    "ERROR_PREFIX",
    "MessageType",
    "HeartbeatType",
    "RequestType",
    "ProtocolError",
    "NewContainer",
    "PredictionResponse",
    "heartbeat_to_container",
    "predict_request",
    "parse_container_message",
    "heartbeat_to_frontend",
    "new_container",
    "prediction_response",
    "parse_frontend_message",
    "PredictRequest",
    "HeartbeatToContainer",
]

RPC_VERSION = 3
ERROR_PREFIX = "\x00clipper-error\x00"

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
EMPTY = b""


class MessageType(IntEnum):
    NEW_CONTAINER = 0
    CONTAINER_CONTENT = 1
    HEARTBEAT = 2


class HeartbeatType(IntEnum):
    KEEP_ALIVE = 0
    REQUEST_CONTAINER_METADATA = 1


class RequestType(IntEnum):
    PREDICT = 0
    FEEDBACK = 1


class ProtocolError(ValueError):
    """A message does not follow RPC protocol v3."""


_VERSION_FRAME = _U32.pack(RPC_VERSION)
_HB_KEEPALIVE = [EMPTY, _VERSION_FRAME, _U32.pack(MessageType.HEARTBEAT), _U32.pack(HeartbeatType.KEEP_ALIVE)]
_HB_METADATA = [
    EMPTY,
    _VERSION_FRAME,
    _U32.pack(MessageType.HEARTBEAT),
    _U32.pack(HeartbeatType.REQUEST_CONTAINER_METADATA),
]
_CONTENT = _U32.pack(MessageType.CONTAINER_CONTENT)
_PREDICT = _U32.pack(RequestType.PREDICT)


# ---------------------------------------------------------------------------
# Frontend side
# ---------------------------------------------------------------------------


def heartbeat_to_container(request_metadata: bool) -> list[bytes]:
    """Heartbeat reply; ``request_metadata`` asks an unknown container to send NewContainer."""
    return list(_HB_METADATA if request_metadata else _HB_KEEPALIVE)


def predict_request(msg_id: int, input_type_code: int, inputs: Sequence[bytes]) -> list[bytes]:
    """A prediction request carrying one batch of already-encoded inputs."""
    n = len(inputs)
    header = struct.pack(f"<{n + 2}Q", input_type_code, n, *map(len, inputs))
    return [
        EMPTY,
        _VERSION_FRAME,
        _CONTENT,
        _U32.pack(msg_id & 0xFFFFFFFF),
        _PREDICT,
        _U64.pack(len(header)),
        header,
        *inputs,
    ]


@dataclass(frozen=True)
class NewContainer:
    model_name: str
    model_version: str
    input_type_code: int
    rpc_version: int
    status: dict[str, object] | None = None


@dataclass(frozen=True)
class PredictionResponse:
    msg_id: int
    outputs: list[bytes]


_T = TypeVar("_T")


def _strict(parse: Callable[[Sequence[bytes]], _T], frames: Sequence[bytes]) -> _T:
    """Run ``parse``; whatever malformed bytes make it raise comes out as :class:`ProtocolError`."""
    try:
        return parse(frames)
    except ProtocolError:
        raise
    except (struct.error, ValueError, IndexError) as exc:  # UnicodeDecodeError is a ValueError
        msg = f"malformed message: {exc}"
        raise ProtocolError(msg) from exc


def parse_container_message(frames: Sequence[bytes]) -> NewContainer | PredictionResponse | None:
    """Parse what a container sent (frames start at the empty delimiter). ``None`` means a heartbeat.

    :raises ProtocolError: the message is malformed (never anything else, whatever the bytes).
    """
    return _strict(_parse_container_message, frames)


def _parse_container_message(frames: Sequence[bytes]) -> NewContainer | PredictionResponse | None:
    if len(frames) < 2 or frames[0] != EMPTY or len(frames[1]) != 4:
        msg = "message does not start with an empty delimiter and a u32 message type"
        raise ProtocolError(msg)
    mtype = _U32.unpack(frames[1])[0]
    if mtype == MessageType.HEARTBEAT:
        return None
    if mtype == MessageType.CONTAINER_CONTENT:
        if len(frames) < 5:
            msg = "prediction response has fewer than 5 frames"
            raise ProtocolError(msg)
        msg_id = _U32.unpack(frames[2])[0]
        header = frames[4]
        if len(header) < 8 or len(header) % 8:
            msg = "prediction response header is not a u64 array"
            raise ProtocolError(msg)
        n = _U64.unpack_from(header)[0]
        outputs = list(frames[5 : 5 + n])
        if len(outputs) != n:
            msg = f"prediction response announces {n} outputs but carries {len(outputs)}"
            raise ProtocolError(msg)
        return PredictionResponse(msg_id, outputs)
    if mtype == MessageType.NEW_CONTAINER:
        if len(frames) < 6 or len(frames[5]) != 4:
            msg = "NewContainer message has no RPC version frame"
            raise ProtocolError(msg)
        version = _U32.unpack(frames[5])[0]
        status = None
        if len(frames) > 6:
            import json

            try:
                status = json.loads(frames[6])
            except ValueError:
                status = None
        try:
            code = int(frames[4].decode())
        except ValueError as exc:
            msg = f"NewContainer input type {frames[4]!r} is not a decimal integer"
            raise ProtocolError(msg) from exc
        return NewContainer(frames[2].decode("utf-8"), frames[3].decode("utf-8"), code, version, status)
    msg = f"unknown message type {mtype}"
    raise ProtocolError(msg)


# ---------------------------------------------------------------------------
# Container side
# ---------------------------------------------------------------------------


def heartbeat_to_frontend() -> list[bytes]:
    return [EMPTY, _U32.pack(MessageType.HEARTBEAT)]


def new_container(
    model_name: str, model_version: str, input_type_code: int, status: dict[str, object] | None = None
) -> list[bytes]:
    frames = [
        EMPTY,
        _U32.pack(MessageType.NEW_CONTAINER),
        model_name.encode("utf-8"),
        str(model_version).encode("utf-8"),
        str(input_type_code).encode(),
        _VERSION_FRAME,
    ]
    if status is not None:
        import json

        frames.append(json.dumps(status).encode("utf-8"))
    return frames


def prediction_response(msg_id_frame: bytes, outputs: Sequence[str | bytes]) -> list[bytes]:
    """Reply to a prediction request; ``msg_id_frame`` is echoed byte for byte."""
    encoded = [o.encode("utf-8") if isinstance(o, str) else bytes(o) for o in outputs]
    header = struct.pack(f"<{len(encoded) + 1}Q", len(encoded), *map(len, encoded))
    return [EMPTY, _CONTENT, msg_id_frame, _U64.pack(len(header)), header, *encoded]


@dataclass(frozen=True)
class HeartbeatToContainer:
    request_metadata: bool


@dataclass(frozen=True)
class PredictRequest:
    msg_id_frame: bytes
    input_type_code: int
    inputs: list[bytes]


def parse_frontend_message(frames: Sequence[bytes]) -> HeartbeatToContainer | PredictRequest:
    """Parse what the frontend sent to a container (frames start at the empty delimiter).

    :raises ProtocolError: the message is malformed or of another RPC version (never anything else).
    """
    return _strict(_parse_frontend_message, frames)


def _parse_frontend_message(frames: Sequence[bytes]) -> HeartbeatToContainer | PredictRequest:
    if len(frames) < 3 or frames[0] != EMPTY:
        msg = "message does not start with an empty delimiter"
        raise ProtocolError(msg)
    version = _U32.unpack(frames[1])[0]
    if version != RPC_VERSION:
        msg = f"frontend speaks RPC version {version}, this container speaks {RPC_VERSION}"
        raise ProtocolError(msg)
    mtype = _U32.unpack(frames[2])[0]
    if mtype == MessageType.HEARTBEAT:
        return HeartbeatToContainer(_U32.unpack(frames[3])[0] == HeartbeatType.REQUEST_CONTAINER_METADATA)
    if mtype == MessageType.CONTAINER_CONTENT:
        if len(frames) < 7:
            msg = "prediction request has fewer than 7 frames"
            raise ProtocolError(msg)
        header = frames[6]
        fields = struct.unpack(f"<{len(header) // 8}Q", header)
        code, n = fields[0], fields[1]
        inputs = list(frames[7 : 7 + n])
        if len(inputs) != n:
            msg = f"prediction request announces {n} inputs but carries {len(inputs)}"
            raise ProtocolError(msg)
        return PredictRequest(frames[3], code, inputs)
    msg = f"unknown message type {mtype}"
    raise ProtocolError(msg)
