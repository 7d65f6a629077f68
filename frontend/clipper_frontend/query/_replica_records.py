"""The query frontend's replica records (Redis DB 3), kept in step with its connections whether or not Redis is up.

A replica serves as soon as it has registered over RPC; writing its record (and, when it goes away, deleting it) is
queued here and retried until Redis answers. After Redis comes back (:meth:`ReplicaRecords.resync`) every record of a
live replica is written again and every record this frontend left for a replica that is gone is deleted, because a
restarted Redis may have lost the records or kept ones that are stale by now.
"""

from __future__ import annotations

import asyncio
import logging

from clipper_core.config_store import ConfigStore
from clipper_frontend._serve import _probe
from clipper_frontend.query.engine import Replica

logger = logging.getLogger(__name__)

RETRY_INTERVAL = 1.0
PROBE_TIMEOUT = 0.5


class ReplicaRecords:
    """Queued writes of this frontend's replica records, applied in order and retried while Redis is away."""

    def __init__(self, store: ConfigStore, frontend_id: str, stale_prefix: str) -> None:
        self.store = store
        self.frontend_id = frontend_id
        #: records whose ``frontend`` starts with this belong to this frontend (this run or an earlier one)
        self.stale_prefix = stale_prefix
        self.live: dict[bytes, tuple[Replica, dict[str, str]]] = {}
        self.written: set[bytes] = set()
        self.removed: dict[int, Replica] = {}
        self._full = False
        self._wake = asyncio.Event()
        self._failing = False

    def add(self, replica: Replica, fields: dict[str, str]) -> None:
        """Record a registered replica (assigning its replica id) as soon as Redis allows."""
        self.live[replica.identity] = (replica, fields)
        self.written.discard(replica.identity)
        self._wake.set()

    def remove(self, replica: Replica) -> None:
        """Delete the record of a replica that went away as soon as Redis allows."""
        entry = self.live.get(replica.identity)
        if entry is not None and entry[0] is replica:
            del self.live[replica.identity]
            self.written.discard(replica.identity)
        if replica.replica_id >= 0:
            self.removed[id(replica)] = replica
        self._wake.set()

    def resync(self) -> None:
        """Redis came back: rewrite every live record and delete this frontend's stale ones."""
        self._full = True
        self.written.clear()
        self._wake.set()

    @property
    def pending(self) -> bool:
        return bool(self.removed) or self._full or any(i not in self.written for i in self.live)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away (or failing): try again shortly
                if not self._failing:
                    logger.warning(
                        "cannot update replica records in Redis (%s); retrying every %.0f s",
                        exc,
                        RETRY_INTERVAL,
                    )
                self._failing = True
                await asyncio.sleep(RETRY_INTERVAL)
                self._wake.set()
            else:
                if self._failing:
                    logger.info("replica records in Redis are up to date again")
                self._failing = False

    async def _sync(self) -> None:
        if not self.pending:
            return
        # fail fast while Redis is down
        await _probe(self.store.host, self.store.port, PROBE_TIMEOUT, self.store.password)
        full, self._full = self._full, False
        try:
            for key, replica in list(self.removed.items()):
                await self.store.delete_container(replica.name, replica.version, replica.replica_id)
                self.removed.pop(key, None)
            for identity, (replica, fields) in list(self.live.items()):
                if identity in self.written:
                    continue
                if replica.replica_id < 0:
                    replica.replica_id = await self.store.next_replica_id(replica.name, replica.version)
                await self.store.add_container(replica.name, replica.version, replica.replica_id, fields)
                entry = self.live.get(identity)
                if entry is not None and entry[0] is replica:
                    self.written.add(identity)
                    logger.debug("recorded replica %d of %s:%s", replica.replica_id, replica.name, replica.version)
                else:  # went away while being recorded
                    self.removed[id(replica)] = replica
            if full:
                await self._delete_stale()
        except BaseException:
            self._full = self._full or full
            raise
        if self.pending:
            self._wake.set()

    async def _delete_stale(self) -> None:
        ours = {(r.name, r.version, str(r.replica_id)) for r, _ in self.live.values() if r.replica_id >= 0}
        for record in await self.store.list_containers():
            if not record.get("frontend", "").startswith(self.stale_prefix):
                continue
            key = (record.get("model_name", ""), record.get("model_version", ""), record.get("model_replica_id", ""))
            if key not in ours:
                await self.store.delete_container(*key)
                logger.info("deleted the stale record of replica %s of %s:%s", key[2], key[0], key[1])
