"""The management frontend against a real redis-server: every /admin endpoint and every error path of reference §2."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from clipper_frontend.management.app import make_management_app
from clipper_frontend.management.schema import (
    ADD_APPLICATION_JSON_SCHEMA,
    ADD_MODEL_JSON_SCHEMA,
    ADD_MODEL_LINKS_JSON_SCHEMA,
    DELETE_APPLICATION_JSON_SCHEMA,
    GET_CONTAINER_REQUESTS_SCHEMA,
    SELECTION_JSON_SCHEMA,
    VERBOSE_OPTION_JSON_SCHEMA,
)

from clipper_core.config_store import ConfigStore
from clipper_core.input_types import BUILTIN_INPUT_TYPES, InputTypeRegistry
from clipper_core.local.redis_server import redis_command
from clipper_core.ports import free_port, wait_for_port

TIMEOUT = 10


class _ServerThread:
    """The management app on its own event loop in a background thread."""

    def __init__(self, redis_addr: tuple[str, int]) -> None:
        self.redis_addr = redis_addr
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _start(self) -> None:
        self.store = ConfigStore(*self.redis_addr)
        app = make_management_app(self.store, InputTypeRegistry([(t.name, t) for t in BUILTIN_INPUT_TYPES]))
        self.server = app.listen(self.port, address="127.0.0.1")

    async def _stop(self) -> None:
        self.server.stop()
        await self.server.close_all_connections()
        await self.store.close()

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(TIMEOUT)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


@pytest.fixture(scope="module")
def server(redis_server: tuple[str, int]) -> Iterator[_ServerThread]:
    srv = _ServerThread(redis_server)
    srv.start()
    yield srv
    srv.stop()


class Client:
    def __init__(self, port: int, redis_addr: tuple[str, int]) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.redis_addr = redis_addr
        self._clients: dict[int, redis.Redis] = {}

    def post(self, endpoint: str, body: Any) -> requests.Response:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return requests.post(f"{self.base}/admin/{endpoint}", data=data, timeout=TIMEOUT)

    def ok(self, endpoint: str, body: Any) -> requests.Response:
        r = self.post(endpoint, body)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == "application/json"
        return r

    def err(self, endpoint: str, body: Any, text: str) -> None:
        r = self.post(endpoint, body)
        assert (r.status_code, r.text) == (400, text)

    def db(self, n: int) -> redis.Redis:
        client = self._clients.get(n)
        if client is None:
            client = self._clients[n] = redis.Redis(
                host=self.redis_addr[0], port=self.redis_addr[1], db=n, decode_responses=True
            )
        return client

    # shortcuts
    def add_app(self, name: str = "app", input_type: str = "doubles", default: str = "-1.0", slo: int = 100000) -> None:
        self.ok(
            "add_app", {"name": name, "input_type": input_type, "default_output": default, "latency_slo_micros": slo}
        )

    def add_model(self, name: str = "m", version: str = "1", input_type: str = "doubles", **extra: Any) -> None:
        body = {
            "model_name": name,
            "model_version": version,
            "labels": ["a", "b"],
            "input_type": input_type,
            "container_name": "img:1",
            "model_data_path": "DEPRECATED",
            "batch_size": -1,
            **extra,
        }
        self.ok("add_model", body)

    def link(self, app: str = "app", model: str = "m") -> None:
        self.ok("add_model_links", {"app_name": app, "model_names": [model]})


@pytest.fixture
def c(server: _ServerThread, clean_redis: tuple[str, int]) -> Client:
    return Client(server.port, clean_redis)


def json_err(detail: str, schema: str) -> str:
    return f"Error parsing JSON: {detail}. Expected JSON schema: {schema}"


# -- routing --------------------------------------------------------------------------------------


def test_ping(c: Client) -> None:
    r = requests.get(f"{c.base}/admin/ping", timeout=TIMEOUT)
    assert (r.status_code, r.text, r.headers["Content-Type"]) == (200, "PONG", "application/json")


def test_unknown_path_is_json_404(c: Client) -> None:
    for r in (
        requests.post(f"{c.base}/admin/nope", data="{}", timeout=TIMEOUT),
        requests.get(f"{c.base}/x", timeout=TIMEOUT),
    ):
        assert r.status_code == 404
        body = r.json()
        assert body["error"] == "Not found" and "cause" in body


def test_wrong_method_is_405(c: Client) -> None:
    r = requests.get(f"{c.base}/admin/add_app", timeout=TIMEOUT)
    assert r.status_code == 405 and r.json()["error"] == "Method not allowed"


def test_prefix_routes_match_like_the_original(c: Client) -> None:
    c.add_app()
    r = requests.post(f"{c.base}/admin/get_linked_models/x", data='{"app_name": "app"}', timeout=TIMEOUT)
    assert (r.status_code, r.json()) == (200, [])


# -- add_app / delete_app -------------------------------------------------------------------------


def test_add_app(c: Client) -> None:
    r = c.ok("add_app", {"name": "app", "input_type": "d", "default_output": "-1.0", "latency_slo_micros": 20000})
    assert r.text == "Successfully added application with name 'app'"
    assert c.db(5).hgetall("app") == {
        "input_type": "doubles",
        "policy": "DefaultOutputSelectionPolicy",
        "default_output": "-1.0",
        "latency_slo_micros": "20000",
    }
    assert json.loads(c.db(1).get("app:0:0")) == {"y_hat": "-1.0"}


def test_add_app_duplicate(c: Client) -> None:
    c.add_app()
    body = {"name": "app", "input_type": "ints", "default_output": "x", "latency_slo_micros": 1}
    c.err("add_app", body, "application 'app' already exists")


def test_add_app_invalid_input_type(c: Client) -> None:
    r = c.post("add_app", {"name": "a", "input_type": "Doubles", "default_output": "x", "latency_slo_micros": 1})
    assert r.status_code == 400
    assert r.text.startswith("input_type 'Doubles' is not a valid type. Valid types: ")
    assert not c.db(5).exists("a")


@pytest.mark.parametrize("name", ["", "a,b", "a:b", "a/b", "a b", "a\tb"])
def test_add_app_invalid_name(c: Client, name: str) -> None:
    r = c.post("add_app", {"name": name, "input_type": "doubles", "default_output": "x", "latency_slo_micros": 1})
    assert r.status_code == 400
    assert r.text == (
        f"Invalid application name supplied: {name!r}. It must be non-empty and contain none of ',', ':', '/' or spaces"
    )


def test_add_app_json_errors(c: Client) -> None:
    s = ADD_APPLICATION_JSON_SCHEMA
    base = {"name": "a", "input_type": "doubles", "default_output": "x", "latency_slo_micros": 1}
    missing = {k: v for k, v in base.items() if k != "latency_slo_micros"}
    c.err("add_app", missing, json_err("JSON object does not have required key: latency_slo_micros", s))
    c.err(
        "add_app",
        {**base, "name": 3},
        json_err("Type mismatch! JSON key name expected type Stringbut found type Number", s),
    )
    c.err(
        "add_app",
        {**base, "latency_slo_micros": True},
        json_err("Type mismatch! JSON key latency_slo_micros expected type Numberbut found type True", s),
    )
    for bad in (1.5, 2**31):
        detail = f"PredictionData of type Number is not of type int (JSON key latency_slo_micros: {bad})"
        c.err("add_app", {**base, "latency_slo_micros": bad}, json_err(detail, s))
    c.err("add_app", [1, 2], json_err("Can only get key-value pair from an object", s))
    c.err("add_app", b"", json_err("JSON parse error: The document is empty. (offset 0)\n", s))
    r = c.post("add_app", b"{not json")
    assert r.status_code == 400
    assert r.text.startswith("Error parsing JSON: JSON parse error: ") and r.text.endswith(
        ". Expected JSON schema: " + s
    )
    assert "(offset " in r.text


@pytest.mark.parametrize("slo", [0, -5])
def test_add_app_slo_must_be_positive(c: Client, slo: int) -> None:
    body = {"name": "a", "input_type": "doubles", "default_output": "x", "latency_slo_micros": slo}
    c.err("add_app", body, f"Invalid latency_slo_micros supplied: {slo}. It must be a positive integer")


def test_delete_app_removes_links_and_state(c: Client) -> None:
    c.add_app()
    c.add_model()
    c.link()
    r = c.ok("delete_app", {"name": "app"})
    assert r.text == "Successfully deleted application with name 'app'"
    assert not c.db(5).exists("app") and not c.db(7).exists("app") and not c.db(1).exists("app:0:0")
    assert c.db(2).exists("m:1")  # the model stays


def test_delete_app_errors(c: Client) -> None:
    c.err("delete_app", {"name": "nope"}, "Application 'nope' does not exist")
    c.err("delete_app", {}, json_err("JSON object does not have required key: name", DELETE_APPLICATION_JSON_SCHEMA))


# -- add_model ------------------------------------------------------------------------------------


def test_add_model(c: Client) -> None:
    body = {
        "model_name": "m",
        "model_version": "1",
        "labels": ["a", "b"],
        "input_type": "ints",
        "container_name": "img:1",
        "model_data_path": "DEPRECATED",
        "batch_size": 9,
    }
    r = c.ok("add_model", body)
    assert r.text == "Successfully added model with name 'm' and input type 'integers'"
    assert c.db(2).hgetall("m:1") == {
        "model_name": "m",
        "model_version": "1",
        "load": "0.000000",
        "input_type": "integers",
        "labels": "a,b",
        "container_name": "img:1",
        "model_data_path": "DEPRECATED",
        "batch_size": "9",
        "valid": "",
    }
    assert c.db(6).get("CURRENT_MODEL_VERSION:m") == "1"
    c.add_model(version="2", input_type="integers")
    assert c.db(6).get("CURRENT_MODEL_VERSION:m") == "2"  # a new version becomes current at once


def test_add_model_errors(c: Client) -> None:
    c.add_model()
    good = {
        "model_name": "m",
        "model_version": "1",
        "labels": [],
        "input_type": "doubles",
        "container_name": "c",
        "model_data_path": "p",
        "batch_size": 1,
    }
    c.err("add_model", good, "model with name 'm' and version '1' already exists")
    c.err("add_model", {**good, "batch_size": 0}, "The batch size must be positive or DEFAULT_BATCH_SIZE, which is -1")
    c.err("add_model", {**good, "batch_size": -2}, "The batch size must be positive or DEFAULT_BATCH_SIZE, which is -1")
    c.err("add_model", {**good, "model_name": "a,b"}, "Invalid model name supplied: a,b. Contains one of: ',', ':'")
    c.err(
        "add_model", {**good, "model_version": "1:2"}, "Invalid model version supplied: 1:2. Contains one of: ',', ':'"
    )
    c.err(
        "add_model",
        {**good, "model_version": "2", "labels": ["x:y"]},
        "Invalid label supplied: x:y. Contains one of: ',', ':'",
    )
    s = ADD_MODEL_JSON_SCHEMA
    no_batch = {k: v for k, v in good.items() if k != "batch_size"}
    c.err("add_model", no_batch, json_err("JSON object does not have required key: batch_size", s))
    detail = "Type mismatch! JSON key batch_size expected type Numberbut found type String"
    c.err("add_model", {**good, "batch_size": "5"}, json_err(detail, s))
    detail = "Array input of type Number is not of type string (JSON key labels)"
    c.err("add_model", {**good, "labels": ["a", 1]}, json_err(detail, s))
    r = c.post("add_model", {**good, "model_version": "2", "input_type": "tensor"})
    assert r.status_code == 400 and r.text.startswith("input_type 'tensor' is not a valid type")


def test_add_model_incompatible_with_linked_app(c: Client) -> None:
    c.add_app(input_type="doubles")
    c.add_model()
    c.link()
    body = {
        "model_name": "m",
        "model_version": "2",
        "labels": [],
        "input_type": "strings",
        "container_name": "c",
        "model_data_path": "p",
        "batch_size": 1,
    }
    c.err(
        "add_model",
        body,
        "Model with name 'm' is already linked to app 'app' using input type 'doubles'. "
        "The input type you provided for a new version of the model, 'strings', is not compatible.",
    )
    assert c.db(6).get("CURRENT_MODEL_VERSION:m") == "1"


# -- links ----------------------------------------------------------------------------------------


def test_add_model_links(c: Client) -> None:
    c.add_app()
    c.add_model()
    r = c.ok("add_model_links", {"app_name": "app", "model_names": ["m"]})
    assert r.text == "Successfully linked model with name 'm' to application 'app'"
    assert c.db(7).smembers("app") == {"m"}


def test_add_model_links_errors_in_original_order(c: Client) -> None:
    c.err("add_model_links", {"app_name": "app", "model_names": ["m"]}, "No app with name 'app' exists.")
    c.add_app(input_type="doubles")
    c.add_model("m")
    c.add_model("m2")
    c.add_model("s", input_type="strings")
    # (2) model checks come before the count check
    c.err("add_model_links", {"app_name": "app", "model_names": ["m", "ghost"]}, "No model with name 'ghost' exists.")
    c.err(
        "add_model_links",
        {"app_name": "app", "model_names": ["s"]},
        "Model with name 's' has incompatible input_type 'strings'. Requested app to link to has input_type 'doubles'.",
    )
    # (3) count
    c.err(
        "add_model_links",
        {"app_name": "app", "model_names": []},
        "Please provide the name of the model that you want to link to the application 'app'",
    )
    c.err(
        "add_model_links",
        {"app_name": "app", "model_names": ["m", "m2"]},
        "Applications must be linked with at most one model. Attempted to add links to 2 models.",
    )
    # (4) existing link
    c.link("app", "m")
    c.err(
        "add_model_links",
        {"app_name": "app", "model_names": ["m"]},
        "The model with name 'm' is already linked to 'app'",
    )
    c.err(
        "add_model_links", {"app_name": "app", "model_names": ["m2"]}, "A model with name m is already linked to 'app'."
    )
    detail = "Type mismatch! JSON key model_names expected type Arraybut found type String"
    c.err("add_model_links", {"app_name": "app", "model_names": "m"}, json_err(detail, ADD_MODEL_LINKS_JSON_SCHEMA))


def test_delete_model_links(c: Client) -> None:
    c.add_app()
    c.add_model()
    c.link()
    r = c.ok("delete_model_links", {"app_name": "app", "model_names": ["m"]})
    assert r.text == "Success!"
    assert not c.db(7).exists("app")


def test_delete_model_links_errors(c: Client) -> None:
    c.err("delete_model_links", {"app_name": "x", "model_names": ["m"]}, "No app with name x exists.")
    c.add_app()
    c.err(
        "delete_model_links",
        {"app_name": "app", "model_names": ["m"]},
        "Cannot remove nonexistent link between app app and model m",
    )


def test_get_linked_models(c: Client) -> None:
    c.add_app()
    assert c.ok("get_linked_models", {"app_name": "app"}).json() == []
    c.add_model()
    c.link()
    assert c.ok("get_linked_models", {"app_name": "app"}).json() == ["m"]
    c.err("get_linked_models", {"app_name": "nope"}, "No application with name 'nope' exists.")


# -- versions -------------------------------------------------------------------------------------


def test_set_model_version(c: Client) -> None:
    c.add_model(version="1")
    c.add_model(version="2")
    r = c.ok("set_model_version", {"model_name": "m", "model_version": "1"})
    assert r.text == "Successfully set model with name 'm' to version '1'"
    assert c.db(6).get("CURRENT_MODEL_VERSION:m") == "1"
    info = c.ok("get_model", {"model_name": "m", "model_version": "1"}).json()
    assert info["is_current_version"] is True


def test_set_model_version_errors(c: Client) -> None:
    c.err(
        "set_model_version", {"model_name": "m", "model_version": "1"}, "Cannot set version for nonexistent model 'm'"
    )
    c.add_model(version="1", input_type="doubles")
    c.add_model(version="2", input_type="integers")
    c.err(
        "set_model_version",
        {"model_name": "m", "model_version": "3"},
        "Cannot set non-existent version '3' for model with name 'm'",
    )
    c.ok("set_model_version", {"model_name": "m", "model_version": "1"})
    c.add_app(input_type="doubles")
    c.link()
    c.err(
        "set_model_version",
        {"model_name": "m", "model_version": "2"},
        "Model with name 'm' is already linked to app 'app' using input type 'doubles'. "
        "The input type you provided for a new version of the model, 'integers', is not compatible.",
    )


def test_delete_versioned_model(c: Client) -> None:
    c.add_model(version="1")
    c.add_model(version="2")
    for version, rid in (("1", 0), ("1", 1), ("2", 0)):
        _add_replica(c, version, rid)
    c.db(8).hset("m:1", mapping={"image": "local:x/m:1", "input_type": "doubles", "num_replicas": "2"})
    r = c.ok("delete_versioned_model", {"model_name": "m", "model_version": "1"})
    assert r.text == "Successfully deleted model with name 'm' and version '1'"
    assert not c.db(2).exists("m:1") and c.db(2).exists("m:2")
    assert not c.db(8).exists("m:1")
    assert sorted(c.db(3).keys("*")) == ["m,2,0"]


def test_delete_versioned_model_errors(c: Client) -> None:
    body = {"model_name": "m", "model_version": "1"}
    c.err("delete_versioned_model", body, "model with name 'm' and version '1' does not exist")
    c.add_model()
    c.db(2).hdel("m:1", "valid")
    c.err("delete_versioned_model", body, "model with name 'm' and version '1' is already marked as 'invalid'")


# -- getters --------------------------------------------------------------------------------------


def test_get_all_applications(c: Client) -> None:
    assert c.ok("get_all_applications", {"verbose": False}).json() == []
    c.add_app("a1", "ints", "DEFAULT", 3000)
    c.add_app("a2")
    c.add_model(input_type="integers")
    c.link("a1", "m")
    assert c.ok("get_all_applications", {"verbose": False}).json() == ["a1", "a2"]
    assert c.ok("get_all_applications", {"verbose": True}).json() == [
        {
            "input_type": "integers",
            "default_output": "DEFAULT",
            "latency_slo_micros": 3000,
            "name": "a1",
            "linked_models": ["m"],
        },
        {
            "input_type": "doubles",
            "default_output": "-1.0",
            "latency_slo_micros": 100000,
            "name": "a2",
            "linked_models": [],
        },
    ]
    detail = "Type mismatch! JSON key verbose expected type bool but found type Number"
    c.err("get_all_applications", {"verbose": 1}, json_err(detail, VERBOSE_OPTION_JSON_SCHEMA))


def test_get_application(c: Client) -> None:
    assert c.ok("get_application", {"name": "app"}).json() == {}
    c.add_app()
    assert c.ok("get_application", {"name": "app"}).json() == {
        "input_type": "doubles",
        "default_output": "-1.0",
        "latency_slo_micros": 100000,
        "name": "app",
        "linked_models": [],
    }


def test_get_all_models(c: Client) -> None:
    assert c.ok("get_all_models", {"verbose": False}).json() == []
    c.add_model(version="1")
    c.add_model(version="2", labels=[])
    assert sorted(c.ok("get_all_models", {"verbose": False}).json()) == ["m:1", "m:2"]
    verbose = sorted(c.ok("get_all_models", {"verbose": True}).json(), key=lambda m: m["model_version"])
    assert verbose == [
        {
            "model_name": "m",
            "model_version": "1",
            "input_type": "doubles",
            "labels": ["a", "b"],
            "container_name": "img:1",
            "model_data_path": "DEPRECATED",
            "is_current_version": False,
        },
        {
            "model_name": "m",
            "model_version": "2",
            "input_type": "doubles",
            "labels": [""],
            "container_name": "img:1",
            "model_data_path": "DEPRECATED",
            "is_current_version": True,
        },
    ]


def test_get_model(c: Client) -> None:
    assert c.ok("get_model", {"model_name": "m", "model_version": "1"}).json() == {}
    c.add_model()
    assert c.ok("get_model", {"model_name": "m", "model_version": "1"}).json() == {
        "model_name": "m",
        "model_version": "1",
        "input_type": "doubles",
        "labels": ["a", "b"],
        "container_name": "img:1",
        "model_data_path": "DEPRECATED",
        "is_current_version": True,
    }


def _add_replica(c: Client, version: str, rid: int, **extra: str) -> None:
    c.db(3).hset(
        f"m,{version},{rid}",
        mapping={
            "model_id": f"m:{version}",
            "model_name": "m",
            "model_version": version,
            "model_replica_id": str(rid),
            "zmq_connection_id": "7",
            "batch_size": "1",
            "input_type": "doubles",
            **extra,
        },
    )


def test_get_all_containers(c: Client) -> None:
    assert c.ok("get_all_containers", {"verbose": True}).json() == []
    _add_replica(c, "1", 0, status="ready", pid="4242", frontend="fe-0")
    _add_replica(c, "1", 1, status="error", error="boom")
    assert c.ok("get_all_containers", {"verbose": False}).json() == ["m:1:0", "m:1:1"]
    assert c.ok("get_all_containers", {"verbose": True}).json() == [
        {
            "model_id": "m:1",
            "model_name": "m",
            "model_version": "1",
            "model_replica_id": 0,
            "input_type": "doubles",
            "status": "ready",
            "pid": 4242,
            "frontend": "fe-0",
        },
        {
            "model_id": "m:1",
            "model_name": "m",
            "model_version": "1",
            "model_replica_id": 1,
            "input_type": "doubles",
            "status": "error",
            "error": "boom",
        },
    ]


def test_get_container(c: Client) -> None:
    assert c.ok("get_container", {"model_name": "m", "model_version": "1", "replica_id": 0}).json() == {}
    _add_replica(c, "1", 0)
    assert c.ok("get_container", {"model_name": "m", "model_version": "1", "replica_id": 0}).json() == {
        "model_id": "m:1",
        "model_name": "m",
        "model_version": "1",
        "model_replica_id": 0,
        "input_type": "doubles",
    }
    detail = "Type mismatch! JSON key replica_id expected type Numberbut found type String"
    body = {"model_name": "m", "model_version": "1", "replica_id": "0"}
    c.err("get_container", body, json_err(detail, GET_CONTAINER_REQUESTS_SCHEMA))


def test_get_state(c: Client) -> None:
    c.add_app(default="DEFAULT")
    assert c.ok("get_state", {"app_name": "app", "uid": 0}).text == "DEFAULT"
    assert c.ok("get_state", {"app_name": "app", "uid": 7}).text == "DEFAULT"  # uid != 0 is treated as 0
    assert c.ok("get_state", {"app_name": "nope", "uid": 0}).text == ""
    c.err(
        "get_state", {"app_name": "app"}, json_err("JSON object does not have required key: uid", SELECTION_JSON_SCHEMA)
    )


# -- the process ----------------------------------------------------------------------------------


def test_cli_retries_redis_until_it_answers(tmp_path: Path) -> None:
    """`python -m clipper_frontend.management` waits for Redis, serves, and exits 0 on SIGTERM."""
    redis_port, http_port = free_port(), free_port()
    cmd = [
        sys.executable,
        "-m",
        "clipper_frontend.management",
        "--host",
        "127.0.0.1",
        "--port",
        str(http_port),
        "--redis-ip",
        "127.0.0.1",
        "--redis-port",
        str(redis_port),
    ]
    err_log = open(tmp_path / "mgmt.log", "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    redis_proc = None
    try:
        deadline = time.monotonic() + 20
        while b"Retrying in 1 second" not in (tmp_path / "mgmt.log").read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "mgmt.log").read_text()
            time.sleep(0.1)
        redis_proc = subprocess.Popen(
            redis_command(redis_port, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(redis_port, proc=redis_proc)
        wait_for_port(http_port, timeout=20, proc=proc)
        r = requests.get(f"http://127.0.0.1:{http_port}/admin/ping", timeout=TIMEOUT)
        assert (r.status_code, r.text) == (200, "PONG")
        body = {"name": "cli", "input_type": "s", "default_output": "x", "latency_slo_micros": 5}
        r = requests.post(f"http://127.0.0.1:{http_port}/admin/add_app", data=json.dumps(body), timeout=TIMEOUT)
        assert (r.status_code, r.text) == (200, "Successfully added application with name 'cli'")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        for p in (proc, redis_proc):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        err_log.close()


# -- the clipper command ----------------------------------------------------------------------------


def test_clipper_help_lists_the_frontend_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from clipper_core.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "query-frontend" in out and "management-frontend" in out


def test_clipper_query_frontend_help_documents_the_limits(capsys: pytest.CaptureFixture[str]) -> None:
    from clipper_core.cli import main

    with pytest.raises(SystemExit):
        main(["query-frontend", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--rpc-port",
        "--redis_port",
        "--max-connections",
        "--header-timeout",
        "--body-timeout",
        "--max-body-bytes",
        "--max-pending-bytes",
        "--max-batch-items",
        "--write-buffer-high-water",
    ):
        assert flag in out, flag


def test_clipper_management_frontend_serves_and_stops_on_sigterm(redis_server: tuple[str, int], tmp_path: Path) -> None:
    port = free_port()
    clipper = str(Path(sys.executable).parent / "clipper")
    log = open(tmp_path / "clipper-mgmt.log", "wb")
    proc = subprocess.Popen(
        [
            clipper,
            "management-frontend",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--redis_ip",
            "127.0.0.1",
            "--redis-port",
            str(redis_server[1]),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_port(port, timeout=20, proc=proc)
        r = requests.get(f"http://127.0.0.1:{port}/admin/ping", timeout=TIMEOUT)
        assert (r.status_code, r.text) == (200, "PONG")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
