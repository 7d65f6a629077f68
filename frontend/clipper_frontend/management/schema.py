"""Request-body parsing for the management API: the original's schema texts and ``json_util`` getters.

Field access follows rapidjson's rules and messages (``JSON object does not have required key: k``,
``Type mismatch! JSON key k expected type Stringbut found type Number``, with no space before "but", as the
original). Integers must be JSON integers that fit in int32; a non-integer number also names the field.
"""

from __future__ import annotations

from typing import Any

import orjson

from clipper_core.errors import ManagementError
from clipper_core.input_types import INT32_MAX, INT32_MIN, json_type_name, type_mismatch

# Schema texts, byte for byte as the original's (including their stray commas).
ADD_APPLICATION_JSON_SCHEMA = """
  {
   "name" := string,
   "input_type" := "integers" | "bytes" | "floats" | "doubles" | "strings",
   "default_output" := string,
   "latency_slo_micros" := int
  }
"""
DELETE_APPLICATION_JSON_SCHEMA = """
  {
    "name" := string
  }
"""
ADD_MODEL_LINKS_JSON_SCHEMA = """
  {
    "app_name" := string,
    "model_names" := [string]
  }
"""
DELETE_MODEL_LINKS_JSON_SCHEMA = """
  {
  "app_name" := string,
  "model_names" := [string]
  }
"""
GET_LINKED_MODELS_REQUESTS_SCHEMA = """
  {
    "app_name" := string
  }
"""
VERBOSE_OPTION_JSON_SCHEMA = """
  {
    "verbose" := bool
  }
"""
GET_APPLICATION_REQUESTS_SCHEMA = """
  {
    "name" := string
  }
"""
GET_MODEL_REQUESTS_SCHEMA = """
  {
    "model_name" := string,
    "model_version" := string
  }
"""
GET_CONTAINER_REQUESTS_SCHEMA = """
  {
    "model_name" := string,
    "model_version" := string,
    "replica_id" := int
  }
"""
ADD_MODEL_JSON_SCHEMA = """
  {
   "model_name" := string,
   "model_version" := string,
   "labels" := [string],
   "input_type" := "integers" | "bytes" | "floats" | "doubles" | "strings",
   "container_name" := string,
   "model_data_path" := string
  }
"""
DELETE_VERSIONED_MODEL_JSON_SCHEMA = """
  {
   "model_name" := string,
   "model_version" := string,
  }
"""
SET_VERSION_JSON_SCHEMA = DELETE_VERSIONED_MODEL_JSON_SCHEMA
SELECTION_JSON_SCHEMA = """
  {
   "app_name" := string,
   "uid" := int,
  }
"""


class JsonRequestError(ManagementError):
    """The request body is not valid JSON or does not match the endpoint's schema."""


def parse_body(raw: bytes) -> Any:
    """Decode a request body; the detail text follows rapidjson's ``JSON parse error: ... (offset N)``."""
    if not raw.strip():
        msg = f"JSON parse error: The document is empty. (offset {len(raw)})\n"
        raise JsonRequestError(msg)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        msg = f"JSON parse error: {e.msg} (offset {e.pos})\n"
        raise JsonRequestError(msg) from None


class Body:
    """Typed field access on a decoded request with the original's ``json_util`` messages."""

    def __init__(self, doc: Any) -> None:
        self.doc = doc

    def _get(self, key: str) -> Any:
        if not isinstance(self.doc, dict):
            msg = "Can only get key-value pair from an object"
            raise JsonRequestError(msg)
        if key not in self.doc:
            msg = f"JSON object does not have required key: {key}"
            raise JsonRequestError(msg)
        return self.doc[key]

    @staticmethod
    def _mismatch(key: str, expected: str, value: Any) -> JsonRequestError:
        return JsonRequestError(str(type_mismatch(key, expected, value)))

    def string(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._mismatch(key, "String", value)
        return value

    def int32(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._mismatch(key, "Number", value)
        if not isinstance(value, int) or not INT32_MIN <= value <= INT32_MAX:
            msg = f"PredictionData of type Number is not of type int (JSON key {key}: {value})"
            raise JsonRequestError(msg)
        return value

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            msg = f"Type mismatch! JSON key {key} expected type bool but found type {json_type_name(value)}"
            raise JsonRequestError(msg)
        return value

    def string_array(self, key: str) -> list[str]:
        value = self._get(key)
        if not isinstance(value, list):
            raise self._mismatch(key, "Array", value)
        for elem in value:
            if not isinstance(elem, str):
                msg = f"Array input of type {json_type_name(elem)} is not of type string (JSON key {key})"
                raise JsonRequestError(msg)
        return list(value)
