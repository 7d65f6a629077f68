"""RPC v3 frames byte for byte, and input-type validation/encoding."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

from clipper_core.errors import InputDecodeError
from clipper_core.input_types import Bytes, Doubles, Floats, InputType, Integers, Strings
from clipper_core.rpc import frames as rpc


def test_predict_request_layout_matches_protocol_v3() -> None:
    inputs = [struct.pack("<2d", 1.0, 2.0), struct.pack("<1d", 3.0)]
    frames = rpc.predict_request(7, 3, inputs)
    assert frames[0] == b""
    assert struct.unpack("<I", frames[1])[0] == 3  # RPC version
    assert struct.unpack("<I", frames[2])[0] == 1  # ContainerContent
    assert struct.unpack("<I", frames[3])[0] == 7  # msg id
    assert struct.unpack("<I", frames[4])[0] == 0  # PredictRequest
    assert struct.unpack("<Q", frames[5])[0] == 8 * 4
    assert struct.unpack("<4Q", frames[6]) == (3, 2, 16, 8)
    assert frames[7:] == inputs
    parsed = rpc.parse_frontend_message(frames)
    assert isinstance(parsed, rpc.PredictRequest) and parsed.inputs == inputs and parsed.input_type_code == 3


def test_container_messages_round_trip() -> None:
    assert rpc.parse_container_message(rpc.heartbeat_to_frontend()) is None
    nc = rpc.parse_container_message(rpc.new_container("m", "1", 3))
    assert nc == rpc.NewContainer("m", "1", 3, 3, None)
    nc = rpc.parse_container_message(rpc.new_container("m", "1", 3, {"status": "error", "error": "x"}))
    assert isinstance(nc, rpc.NewContainer) and nc.status == {"status": "error", "error": "x"}
    resp = rpc.parse_container_message(rpc.prediction_response(struct.pack("<I", 9), ["a", "bc"]))
    assert resp == rpc.PredictionResponse(9, [b"a", b"bc"])
    hb = rpc.parse_frontend_message(rpc.heartbeat_to_container(True))
    assert hb == rpc.HeartbeatToContainer(True)


def test_malformed_messages_raise_protocol_error() -> None:
    with pytest.raises(rpc.ProtocolError):
        rpc.parse_container_message([b"x"])
    with pytest.raises(rpc.ProtocolError, match="no RPC version"):
        rpc.parse_container_message([b"", struct.pack("<I", 0), b"m", b"1", b"3"])
    with pytest.raises(rpc.ProtocolError):  # a msg id frame that is not 4 bytes
        rpc.parse_container_message([b"", struct.pack("<I", 1), b"xx", struct.pack("<Q", 8), struct.pack("<Q", 0)])
    with pytest.raises(rpc.ProtocolError):  # a model name that is not UTF-8
        rpc.parse_container_message([b"", struct.pack("<I", 0), b"\xff\xfe", b"1", b"3", struct.pack("<I", 3)])
    with pytest.raises(rpc.ProtocolError):
        rpc.parse_frontend_message([b"", b"\x03"])
    with pytest.raises(rpc.ProtocolError, match="version 2"):
        rpc.parse_frontend_message([b"", struct.pack("<I", 2), struct.pack("<I", 2), struct.pack("<I", 0)])


@pytest.mark.parametrize(
    ("itype", "value", "dtype"),
    [(Doubles(), [1.5, 2], "<f8"), (Floats(), [1.5, 2.0], "<f4"), (Integers(), [1, -2], "<i4")],
)
def test_numeric_encoding(itype: InputType, value: list[float], dtype: str) -> None:
    payload = itype.encode(value)
    assert np.array_equal(np.frombuffer(payload, dtype), np.asarray(value, dtype))
    batch = itype.decode_batch([payload, payload])
    assert batch.shape == (2, len(value))


def test_uneven_batches_arrive_as_object_arrays() -> None:
    d = Doubles()
    batch = d.decode_batch([d.encode([1.0]), d.encode([1.0, 2.0])])
    assert batch.dtype == object and list(batch[1]) == [1.0, 2.0]


def test_validation_messages() -> None:
    with pytest.raises(
        InputDecodeError, match="Type mismatch! JSON key input expected type Arraybut found type Object"
    ):
        Doubles().encode({"a": 1})
    with pytest.raises(InputDecodeError, match="Array input of type Null is not of type double"):
        Doubles().encode([None])
    with pytest.raises(InputDecodeError, match="does not fit in a 32-bit int"):
        Integers().encode([2**40])
    with pytest.raises(InputDecodeError, match="PredictionData of type Number is not of type base64-encoded string"):
        Bytes().encode_batch_item(5)
    with pytest.raises(InputDecodeError, match="not valid base64"):
        Bytes().encode("a")
    assert Strings().decode(Strings().encode("héllo")) == "héllo".encode()
    assert list(Bytes().decode(Bytes().encode("aGk="))) == [104, 105]


def test_core_imports_no_tornado() -> None:
    code = (
        "import pkgutil, importlib, sys, clipper_core\n"
        "for m in pkgutil.walk_packages(clipper_core.__path__, 'clipper_core.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "import clipper_admin\n"
        "frameworks = ('tornado', 'docker', 'kubernetes', 'pyspark', 'torch', 'onnx', 'onnxruntime')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in frameworks]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
