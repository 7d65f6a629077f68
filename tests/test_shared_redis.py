"""Several query frontends can share one Redis: each serves the same applications through the replicas connected
to it, replica ids stay unique across them, and no frontend removes another's replica records."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests._replica import ProtocolReplica
from tests.frontend_harness import Frontend, query_frontend


def _doubles_sum(tag: float) -> Callable[[list[bytes]], list[str]]:
    """A model whose answers say which replica computed them."""

    def predict(inputs: list[bytes]) -> list[str]:
        return [repr(float(np.frombuffer(x, "<f8").sum()) + tag) for x in inputs]

    return predict


def _records(fe: Frontend) -> dict[str, dict[str, str]]:
    return {key: fe.db(3).hgetall(key) for key in fe.db(3).keys("shared-model,1,*")}


def test_two_frontends_share_one_redis(redis_server: tuple[str, int], tmp_path: Path) -> None:
    port = redis_server[1]
    with query_frontend(port, tmp_path) as a, query_frontend(port, tmp_path) as b:
        a.add_app("shared-app", "doubles", "-1.0", 2_000_000)
        a.add_model("shared-model", "1")
        a.link("shared-app", "shared-model")
        with (
            ProtocolReplica(a.rpc_port, "shared-model", "1", 3, _doubles_sum(1000.0)) as ra,
            ProtocolReplica(b.rpc_port, "shared-model", "1", 3, _doubles_sum(2000.0)) as rb,
        ):
            assert ra.registered.wait(10) and rb.registered.wait(10)
            # Each frontend answers through its own replica.
            for fe, expected in ((a, 1001.5), (b, 2001.5)):
                fe.wait_until(
                    lambda fe=fe, expected=expected: (
                        fe.predict("shared-app", {"input": [1.0, 0.5]}).json().get("output") == expected
                    ),
                    what=f"frontend {fe.port} to answer through its replica",
                )
            a.wait_until(lambda: len(_records(a)) == 2, what="both replica records")
            records = _records(a)
            assert len({r["model_replica_id"] for r in records.values()}) == 2  # unique across frontends
            # "<hostname>:<rpc host>:<rpc port>:<pid>": which frontend wrote the record
            by_frontend = {
                r["frontend"].rsplit(":", 1)[0].removeprefix(f"{socket.gethostname()}:"): key
                for key, r in records.items()
            }
            assert set(by_frontend) == {f"127.0.0.1:{a.rpc_port}", f"127.0.0.1:{b.rpc_port}"}, records

            b.proc.terminate()  # b goes away: it removes its own record and nobody else's
            b.proc.wait(timeout=20)
            a.wait_until(
                lambda: list(_records(a)) == [by_frontend[f"127.0.0.1:{a.rpc_port}"]],
                what="only a's replica record to remain",
            )
            with query_frontend(port, tmp_path) as c:  # a new frontend starting up leaves a's record alone
                c.wait_for_app("shared-app")
                assert list(_records(a)) == [by_frontend[f"127.0.0.1:{a.rpc_port}"]]
            assert a.predict("shared-app", {"input": [1.0, 0.5]}).json()["output"] == 1001.5
