"""One supervised process of the local cluster, restarted with a growing back-off whenever it exits."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("clipper_core.local.supervisor")

MIN_BACKOFF = 0.2
MAX_BACKOFF = 5.0
STABLE_AFTER = 10.0  # a child that ran this long before exiting restarts with the minimum back-off
STOP_GRACE = 5.0


class Child:
    """One supervised process, restarted with back-off whenever it exits."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.env = env
        self.log = log
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.started_at = 0.0
        self.backoff = 0.0
        self.next_start = 0.0
        self.before_start: Any = None  # optional callable run before each start

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> None:
        if self.before_start is not None:
            self.before_start()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd
            )
        self.started_at = time.monotonic()
        logger.info("started %s (pid %s): %s", self.name, self.proc.pid, " ".join(self.cmd))

    def check(self, now: float) -> bool:
        """Reap an exited process and restart it when its back-off elapsed. Returns whether anything changed."""
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return False
            ran = now - self.started_at
            stable = ran >= STABLE_AFTER or not self.backoff
            self.backoff = MIN_BACKOFF if stable else min(self.backoff * 2, MAX_BACKOFF)
            self.next_start = now + self.backoff
            logger.warning(
                "%s (pid %s) exited with %s after %.1f s; restarting in %.1f s (see %s)",
                self.name,
                self.proc.pid,
                code,
                ran,
                self.backoff,
                self.log,
            )
            self.proc = None
            self.restarts += 1
            return True
        if now >= self.next_start:
            try:
                self.start()
            except OSError as exc:
                self.backoff = min(max(self.backoff * 2, MIN_BACKOFF), MAX_BACKOFF)
                self.next_start = now + self.backoff
                logger.error("could not start %s: %s", self.name, exc)
                return False
            return True
        return False

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass


def stop_children(children: list[Child], grace: float = STOP_GRACE) -> None:
    """SIGTERM every child, wait up to ``grace`` seconds, then SIGKILL the rest."""
    for child in children:
        child.terminate(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("%s (pid %s) ignored SIGTERM; killing it", child.name, child.proc.pid)
            child.proc.kill()
            child.proc.wait()
        child.proc = None
