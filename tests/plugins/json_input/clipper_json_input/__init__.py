"""A `json` input type for Clipper: each query input is any JSON value; the model receives decoded Python objects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from clipper_core.input_types import InputType

__version__ = "0.1.0"


class JsonInput(InputType):
    name = "json"
    aliases = ("json-object",)
    code = 16
    json_container = "any"

    def encode(self, value: Any, key: str = "input") -> bytes:
        return orjson.dumps(value)

    def encode_batch_item(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def decode(self, payload: bytes) -> Any:
        return orjson.loads(payload)

    def decode_batch(self, payloads: Sequence[bytes]) -> list[Any]:
        return [orjson.loads(p) for p in payloads]

    def from_python(self, value: Any) -> Any:
        return value
