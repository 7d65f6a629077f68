"""The plugin's registration: entry point, clipper_admin import path, and the `clipper` command's manager flags."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from k8s_test_support import Cluster


def test_registered_as_the_kubernetes_manager() -> None:
    from clipper_k8s import KubernetesContainerManager

    from clipper_core.registry import PluginHost

    assert PluginHost().container_managers().get("kubernetes") is KubernetesContainerManager


def test_clipper_admin_import_path() -> None:
    from clipper_k8s.manager import KubernetesContainerManager as Impl

    import clipper_admin
    from clipper_admin import KubernetesContainerManager

    assert KubernetesContainerManager is Impl
    assert "KubernetesContainerManager" not in clipper_admin.__all__  # `import *` must work without the plugin


def _clipper(k8s: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clipper_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": k8s.kubeconfig},
        check=False,
    )


def test_clipper_stop_with_namespace_and_context_flags(
    k8s: Cluster, managers: Callable[..., Any], cluster_name: str
) -> None:
    from test_k8s_manager import start

    cm = managers(cluster_name=cluster_name)
    start(cm)
    context = "standin" if k8s.server is not None else ""
    flags = ["--manager", "kubernetes", "--cluster-name", cluster_name, "--namespace", "default"]
    flags += ["--kube-context", context] if context else []
    out = _clipper(k8s, "stop", *flags)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not cm.is_running()


def test_clipper_reports_an_unknown_kube_context(k8s: Cluster) -> None:
    out = _clipper(k8s, "status", "--manager", "kubernetes", "--kube-context", "no-such-context")
    assert out.returncode == 1
    assert "error: Could not load Kubernetes credentials" in out.stderr and "no-such-context" in out.stderr


def test_build_model_without_the_docker_plugin_says_what_to_install(
    k8s: Cluster, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clipper_k8s import KubernetesContainerManager

    from clipper_core.errors import DeploymentError

    cm = KubernetesContainerManager(cluster_name="nodocker")
    monkeypatch.setitem(sys.modules, "clipper_docker", None)  # as if clipper-docker were not installed
    with pytest.raises(DeploymentError, match="pip install clipper-docker"):
        cm.build_model("m", "1", str(tmp_path), "default")


def test_importing_the_plugin_does_not_import_the_kubernetes_client() -> None:
    code = (
        "import sys, clipper_k8s, clipper_k8s.hooks, clipper_k8s.manager\n"
        "from clipper_core.registry import PluginHost\n"
        "PluginHost().container_managers().get('kubernetes')\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'kubernetes'], 'kubernetes imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
