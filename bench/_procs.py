"""The processes a bench run starts: each server in its own session, recorded in a state file, killed as a tree.

``cleanup_from_state`` is the safety net behind ``run.py --cleanup STATE`` (run by run.sh's and profile.sh's trap).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil


class Processes:
    """Servers started by this run: each in its own session, recorded in the state file, killed as a tree."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.state: dict[str, Any] = {"pids": {}, "clipper_home": None, "cluster": None}
        self._save()

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.state_path)

    def set_cluster(self, clipper_home: str | None, cluster: str | None) -> None:
        self.state.update(clipper_home=clipper_home, cluster=cluster)
        self._save()

    def start(
        self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen:
        full_env = {**os.environ, **(env or {})}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.state["pids"][name] = proc.pid
        self._save()
        return proc

    def stop(self, name: str) -> None:
        pid = self.state["pids"].pop(name, None)
        if pid is not None:
            kill_tree(pid)
        self._save()

    def stop_everything(self) -> None:
        for name in list(self.state["pids"]):
            self.stop(name)
        stop_cluster(self.state.get("clipper_home"), self.state.get("cluster"))
        self.set_cluster(None, None)


def kill_tree(pid: int, grace: float = 10.0, timeout: float = 5.0) -> None:
    """Stop ``pid`` with its descendants and the rest of its session.

    SIGTERM the leader first and give it ``grace`` seconds to shut its own children down (Ray, MLServer, LitServe and
    BentoML all do); then SIGTERM whatever is left, and SIGKILL what survives another ``timeout`` seconds.
    """
    procs: dict[int, psutil.Process] = {}
    try:
        leader = psutil.Process(pid)
        procs[pid] = leader
        for child in leader.children(recursive=True):
            procs[child.pid] = child
    except psutil.Error:
        leader = None
    for p in psutil.process_iter():  # orphans that stayed in the session (start_new_session: sid == pid)
        try:
            if os.getsid(p.pid) == pid:
                procs[p.pid] = p
        except (OSError, psutil.Error):
            continue
    if leader is not None:
        try:
            leader.terminate()
            leader.wait(grace)
        except psutil.TimeoutExpired:
            pass
        except psutil.Error:
            pass
    alive = [p for p in procs.values() if p.is_running()]
    for p in alive:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def stop_cluster(clipper_home: str | None, cluster: str | None) -> None:
    if not clipper_home or not cluster:
        return
    os.environ["CLIPPER_HOME"] = clipper_home
    from clipper_admin import ClipperConnection, LocalContainerManager

    try:
        ClipperConnection(LocalContainerManager(cluster_name=cluster)).stop_all()
    except Exception as exc:  # noqa: BLE001 - cleanup must go on
        print(f"bench: stopping the cluster failed: {exc}", file=sys.stderr)
    shutil.rmtree(clipper_home, ignore_errors=True)


def cleanup_from_state(state_path: Path) -> None:
    """The safety net run by run.sh's trap: kill whatever a (possibly killed) run.py left behind."""
    if not state_path.exists():
        return
    try:
        state = json.loads(state_path.read_text())
    except ValueError:
        state = {}
    for name, pid in (state.get("pids") or {}).items():
        print(f"bench: cleanup: stopping {name} (pid {pid})", file=sys.stderr)
        kill_tree(int(pid))
    if state.get("cluster"):
        print(f"bench: cleanup: stopping cluster {state['cluster']}", file=sys.stderr)
        stop_cluster(state.get("clipper_home"), state.get("cluster"))
    state_path.unlink(missing_ok=True)


def bound_run(max_seconds: float) -> None:
    """SIGTERM becomes a KeyboardInterrupt and the whole run ends with a TimeoutError after ``max_seconds``, so the
    caller's ``finally`` stops everything the run started either way."""

    def on_signal(signum: int, _frame: object) -> None:
        msg = f"signal {signum}"
        raise KeyboardInterrupt(msg)

    def on_alarm(_signum: int, _frame: object) -> None:
        msg = f"the run exceeded --max-seconds={max_seconds:g}"
        raise TimeoutError(msg)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(max_seconds))
