"""The real-cluster mode: with CLIPPER_K8S_REAL=1 and KUBECONFIG pointing at kind, minikube or k3s, every test of
this directory runs against that cluster instead of the API server stand-in (tests that inject faults into the
stand-in skip there). Without it, this test reports the mode as not run."""

from __future__ import annotations

import pytest
from k8s_test_support import REAL, Cluster


@pytest.mark.skipif(not REAL, reason="real-cluster mode not run: set CLIPPER_K8S_REAL=1 and KUBECONFIG (README)")
def test_real_cluster_mode_talks_to_a_real_api_server(k8s: Cluster) -> None:
    from kubernetes import client, config

    config.load_kube_config(config_file=k8s.kubeconfig)
    version = client.VersionApi().get_code()
    assert version.major and version.git_version, version
    assert k8s.server is None
