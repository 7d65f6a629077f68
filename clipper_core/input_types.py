"""Input types: how a JSON query value is validated and encoded for the wire, and decoded in the container.

The five original types are built-ins registered through ``clipper_register_input_types`` (``trylast``), exactly
as a third-party type would be. Error texts match the original's where its tests and users rely on them.
"""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

from clipper_core.errors import DuplicatePluginError, InputDecodeError
from clipper_core.hookspecs import hookimpl

_LITTLE = sys.byteorder == "little"

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def json_type_name(value: Any) -> str:
    """The rapidjson type name of a decoded JSON value, as the original's messages print it."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def type_mismatch(key: str, expected: str, value: Any) -> InputDecodeError:
    return InputDecodeError(
        f"Type mismatch! JSON key {key} expected type {expected}but found type {json_type_name(value)}"
    )


class InputType:
    """One input type. Subclass it (or instantiate a configured subclass) to add a type from a plugin.

    :ivar name: canonical name stored in Redis (``doubles``).
    :ivar aliases: other accepted spellings (``double``, ``d``); matching is case-sensitive in the management API
        and case-insensitive in the container runtime, as in the original.
    :ivar code: the RPC input-type code sent in NewContainer and prediction headers (0-4 for the originals).
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    code: ClassVar[int] = -1
    #: The JSON shape of one ``input`` value, used in error messages (``Array`` or ``String``).
    json_container: ClassVar[str] = "Array"

    def encode(self, value: Any, key: str = "input") -> bytes:
        """Validate one JSON query value and return its wire bytes.

        :raises InputDecodeError: with a message naming what is wrong.
        """
        raise NotImplementedError

    def encode_batch_item(self, value: Any) -> bytes:
        """Validate one element of ``input_batch`` (the original words some messages differently)."""
        return self.encode(value, key="input_batch")

    def decode(self, payload: bytes) -> Any:
        """Container side: wire bytes of one input -> the object handed to the predict function."""
        raise NotImplementedError

    def decode_batch(self, payloads: Sequence[bytes]) -> Any:
        """Container side: the inputs of one batch -> the object handed to the predict function."""
        out = np.empty(len(payloads), dtype=object)
        for i, p in enumerate(payloads):
            out[i] = self.decode(p)
        return out

    def from_python(self, value: Any) -> Any:
        """Convert a Python/JSON value as ``test_predict_function`` receives it into what the model would see."""
        return self.decode(self.encode(value))

    def __repr__(self) -> str:
        return f"<InputType {self.name} code={self.code}>"


class _NumericType(InputType):
    dtype: ClassVar[str] = "<f8"
    typecode: ClassVar[str] = "d"
    element_name: ClassVar[str] = "double"
    accepts_float: ClassVar[bool] = True

    def _check(self, value: Any, key: str, batch: bool) -> None:
        if type(value) is not list:
            if batch:
                msg = f"Array input of type {json_type_name(value)} is not of type array"
                raise InputDecodeError(msg)
            raise type_mismatch(key, "Array", value)
        accepts_float = self.accepts_float
        for v in value:
            t = type(v)
            if t is int:
                if not accepts_float and not (INT32_MIN <= v <= INT32_MAX):
                    msg = f"Array input value {v} does not fit in a 32-bit int"
                    raise InputDecodeError(msg)
                continue
            if t is float and accepts_float:
                continue
            msg = f"Array input of type {json_type_name(v)} is not of type {self.element_name}"
            raise InputDecodeError(msg)

    def encode(self, value: Any, key: str = "input") -> bytes:
        self._check(value, key, batch=False)
        return self._pack(value)

    def encode_batch_item(self, value: Any) -> bytes:
        self._check(value, "input_batch", batch=True)
        return self._pack(value)

    def _pack(self, value: list[Any]) -> bytes:
        arr = array(self.typecode, value)
        if not _LITTLE:
            arr.byteswap()
        return arr.tobytes()

    def decode(self, payload: bytes) -> np.ndarray:
        return np.frombuffer(payload, dtype=self.dtype)

    def decode_batch(self, payloads: Sequence[bytes]) -> Any:
        if payloads and all(len(p) == len(payloads[0]) for p in payloads):
            # Same-length inputs arrive as one 2-D array, as in the original container.
            return np.frombuffer(b"".join(payloads), dtype=self.dtype).reshape(len(payloads), -1)
        return super().decode_batch(payloads)

    def from_python(self, value: Any) -> np.ndarray:
        return np.asarray(value, dtype=self.dtype)


class Doubles(_NumericType):
    name = "doubles"
    aliases = ("double", "d")
    code = 3


class Floats(_NumericType):
    name = "floats"
    aliases = ("float", "f")
    code = 2
    dtype = "<f4"
    typecode = "f"
    element_name = "float"


class Integers(_NumericType):
    name = "integers"
    aliases = ("ints", "integer", "int", "i")
    code = 1
    dtype = "<i4"
    typecode = "i"
    element_name = "int"
    accepts_float = False


class Strings(InputType):
    name = "strings"
    aliases = ("string", "str", "strs", "s")
    code = 4
    json_container = "String"

    def encode(self, value: Any, key: str = "input") -> bytes:
        if type(value) is not str:
            raise type_mismatch(key, "String", value)
        return value.encode("utf-8")

    def encode_batch_item(self, value: Any) -> bytes:
        if type(value) is not str:
            msg = f"Array input of type {json_type_name(value)} is not of type string"
            raise InputDecodeError(msg)
        return value.encode("utf-8")

    def decode(self, payload: bytes) -> bytes:
        return bytes(payload)

    def from_python(self, value: Any) -> Any:
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)


class Bytes(InputType):
    name = "bytes"
    aliases = ("byte", "b")
    code = 0
    json_container = "String"

    def _b64(self, value: str) -> bytes:
        try:
            return base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError) as exc:
            # The original decoded anything; we say what is wrong instead of sending garbage.
            msg = f"Input is not valid base64: {exc}"
            raise InputDecodeError(msg) from exc

    def encode(self, value: Any, key: str = "input") -> bytes:
        if type(value) is not str:
            raise type_mismatch(key, "String", value)
        return self._b64(value)

    def encode_batch_item(self, value: Any) -> bytes:
        if type(value) is not str:
            msg = f"PredictionData of type {json_type_name(value)} is not of type base64-encoded string"
            raise InputDecodeError(msg)
        return self._b64(value)

    def decode(self, payload: bytes) -> np.ndarray:
        return np.frombuffer(payload, dtype=np.int8)

    def decode_batch(self, payloads: Sequence[bytes]) -> Any:
        if payloads and all(len(p) == len(payloads[0]) for p in payloads):
            return np.frombuffer(b"".join(payloads), dtype=np.int8).reshape(len(payloads), -1)
        return super().decode_batch(payloads)

    def from_python(self, value: Any) -> np.ndarray:
        raw = value if isinstance(value, (bytes, bytearray)) else self._b64(value)
        return np.frombuffer(bytes(raw), dtype=np.int8)


BUILTIN_INPUT_TYPES: tuple[InputType, ...] = (Bytes(), Integers(), Floats(), Doubles(), Strings())


def builtin_input_types() -> InputTypeRegistry:
    """The five original types alone (what a process uses when it must not load plugins)."""
    return InputTypeRegistry((t.name, t) for t in BUILTIN_INPUT_TYPES)


@hookimpl(trylast=True)
def clipper_register_input_types() -> list[InputType]:
    return list(BUILTIN_INPUT_TYPES)


class InputTypeRegistry:
    """Lookup of input types by canonical name, alias or RPC code."""

    def __init__(self, types: Iterable[tuple[str, InputType]]) -> None:
        items = types
        self._by_name: dict[str, InputType] = {}
        self._by_code: dict[int, InputType] = {}
        for name, it in items:
            self._by_name[name] = it
            if it.code in self._by_code and self._by_code[it.code].name != name:
                msg = f"Input types {self._by_code[it.code].name!r} and {name!r} both use RPC code {it.code}"
                raise DuplicatePluginError(msg)
            self._by_code[it.code] = it
        self._aliases: dict[str, InputType] = {}
        for it in self._by_name.values():
            for alias in (it.name, *it.aliases):
                self._aliases.setdefault(alias, it)

    def parse(self, name: str, *, case_sensitive: bool = True) -> InputType:
        """Resolve a name or alias; raises :class:`InputDecodeError` naming the accepted spellings."""
        key = name if case_sensitive else str(name).lower()
        it = self._aliases.get(key)
        if it is None:
            msg = f"input_type {name!r} is not a valid type. Valid types: {', '.join(self.spellings())}"
            raise InputDecodeError(msg)
        return it

    def by_code(self, code: int) -> InputType:
        try:
            return self._by_code[code]
        except KeyError:
            msg = f"Unknown input type code {code}"
            raise InputDecodeError(msg) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def spellings(self) -> list[str]:
        return sorted(self._aliases)

    def __contains__(self, name: object) -> bool:
        return name in self._aliases
