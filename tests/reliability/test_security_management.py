"""The optional management bearer token: with ``management_auth=True`` every ``/admin/<endpoint>`` request needs
``Authorization: Bearer <token>``; ``ClipperConnection`` sends it by itself. Off by default (the original's API).

Real local clusters: Redis, both frontends, supervisor and replica processes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from clipper_admin import ClipperConnection, ClipperException, LocalContainerManager
from clipper_admin.deployers import python as python_deployer
from clipper_core.ports import free_ports
from clipper_core.secrets import read_secrets

pytestmark = pytest.mark.cluster


def feature_sum(xs: list[list[float]]) -> list[str]:
    return [str(sum(x)) for x in xs]


def start(name: str, **kwargs: object) -> ClipperConnection:
    query, mgmt, rpc, redis_port = free_ports(4)
    c = ClipperConnection(LocalContainerManager(name, query, mgmt, rpc, redis_port=redis_port, **kwargs))  # type: ignore[arg-type]
    c.start_clipper()
    return c


@pytest.fixture
def conns(clipper_home: Path) -> Iterator[list[ClipperConnection]]:
    created: list[ClipperConnection] = []
    yield created
    for c in created:
        c.stop_all(graceful=False)


def admin(c: ClipperConnection, endpoint: str, body: dict, headers: dict | None = None) -> requests.Response:
    return requests.post(
        f"http://{c.cm.get_admin_addr()}/admin/{endpoint}", data=json.dumps(body), headers=headers or {}, timeout=10
    )


APP = {"name": "intruder", "input_type": "doubles", "default_output": "x", "latency_slo_micros": 100000}


def test_management_token_required_when_on(conns: list[ClipperConnection]) -> None:
    c = start("mgmt-auth", management_auth=True)
    conns.append(c)
    cm = c.cm
    assert isinstance(cm, LocalContainerManager)
    secrets = read_secrets(cm.cluster_dir)
    assert secrets is not None

    for headers in (
        None,
        {"Authorization": "Bearer wrong"},
        {"Authorization": secrets.management_token},
        {"Authorization": f"Basic {secrets.management_token}"},
    ):
        for endpoint, body in (("add_app", APP), ("get_all_models", {"verbose": True})):
            r = admin(c, endpoint, body, headers)
            assert r.status_code == 401, (headers, r.text)
            assert r.json()["error"] == "Unauthorized" and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(f"http://{cm.get_admin_addr()}/admin/ping", timeout=10).text == "PONG"

    ok = {"Authorization": f"Bearer {secrets.management_token}"}
    assert admin(c, "get_all_applications", {"verbose": False}, ok).json() == []  # nothing got in

    # The admin client authenticates by itself, also when connecting to the running cluster anew.
    python_deployer.create_endpoint(c, "sum", "doubles", feature_sum)
    again = ClipperConnection(LocalContainerManager("mgmt-auth"))
    again.connect()
    assert again.get_all_apps() == ["sum"]
    r = requests.post(f"http://{again.get_query_addr()}/sum/predict", json={"input": [1.0, 2.5]}, timeout=30)
    assert r.json()["output"] == 3.5, r.text

    # A client of another cluster (its own token) is refused with a clear error.
    other = start("mgmt-other", management_auth=True)
    conns.append(other)
    other.cm.get_admin_addr = cm.get_admin_addr  # type: ignore[method-assign]
    with pytest.raises(ClipperException, match="Received error status code: 401"):
        other.get_all_apps()


def test_management_token_off_by_default(conns: list[ClipperConnection]) -> None:
    c = start("mgmt-open")
    conns.append(c)
    assert c.cm.admin_headers() == {}
    assert admin(c, "add_app", APP).status_code == 200
    assert c.get_all_apps() == ["intruder"]
