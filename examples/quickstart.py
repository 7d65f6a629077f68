"""The quickstart: start a local cluster, register an app, deploy a closure, link it, predict.

Mirrors the original Clipper quickstart, on the embedded local cluster instead of Docker.
Run it with ``bash scripts/quickstart.sh`` (or ``python examples/quickstart.py`` inside the venv).
Pass ``--keep`` to leave the cluster running afterwards (stop it with ``clipper stop``).
"""

from __future__ import annotations

import sys

import requests

from clipper_admin import ClipperConnection, LocalContainerManager
from clipper_admin.deployers import python as python_deployer


def feature_sum(xs: list[list[float]]) -> list[str]:
    return [str(sum(x)) for x in xs]


def main() -> None:
    keep = "--keep" in sys.argv
    clipper_conn = ClipperConnection(LocalContainerManager())
    clipper_conn.start_clipper()
    try:
        clipper_conn.register_application(
            name="hello-world", input_type="doubles", default_output="-1.0", slo_micros=100000
        )
        python_deployer.deploy_python_closure(
            clipper_conn, name="sum-model", version=1, input_type="doubles", func=feature_sum
        )
        clipper_conn.link_model_to_app(app_name="hello-world", model_name="sum-model")
        addr = clipper_conn.get_query_addr()
        response = requests.post(f"http://{addr}/hello-world/predict", json={"input": [1.1, 2.2, 3.3]}, timeout=10)
        print(f'POST http://{addr}/hello-world/predict {{"input": [1.1, 2.2, 3.3]}}')
        print(response.json())
    finally:
        if keep:
            print("Cluster left running; stop it with `clipper stop`.")
        else:
            clipper_conn.stop_all()


if __name__ == "__main__":
    main()
