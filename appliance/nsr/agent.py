"""The routing engine's side of non-stop routing: ownership, standby sync, handover.

One ``NsrAgent`` per engine process (``Engine.nsr``). It owns the engine's connection to
the checkpoint store (a single worker thread: the store is blocking and is never called
from the event loop, DESIGN.md invariant 4), the ownership lease, the RIB mirror
(appliance/nsr/ribmirror.py: the active engine writes, a standby follows) and the two
halves of a switchover:

- ``release(to)`` on the active engine: pause the sessions (reads stop, the kernel still
  acknowledges; keepalives keep flowing), write the mirror's last delta and wait for the
  standby to apply it, drain the write buffers, freeze the 4-tuples (nftables), detach
  each connection and dump it (TCP_REPAIR), export the BFD sessions, write everything
  fenced by the lease, transfer the lease to ``to`` in one compare-and-set, close the
  sockets silently.
- ``adopt()`` on the standby that now holds the lease: check its mirror is at the
  handover's sequence, restore each socket (TCP_REPAIR, MD5 key from configuration), lift
  the freeze, leave repair mode (window probe), send a KEEPALIVE at once, continue each
  peer's output queue over the mirrored RIBs, adopt the BFD sessions, start listening and
  take the FIB over (reconcile, never a flush).
- ``resume()`` on the old engine when the new one failed before it took the sessions:
  take the lease back and restore its own sockets; its RIBs were never touched.

Store layout: lease ``LEASE`` (one per routing instance: all sessions move together);
namespace ``nsr`` holds ``standby/<engine-id>`` (heartbeat, config digest),
``mirror/<engine-id>`` (a standby's mirror: applied sequence, synced, base wanted),
``mirror-writer`` (bases served) and ``handover`` (the last switchover);
``nsr.session`` one record per neighbor; ``nsr.ribbase`` / ``nsr.ribdelta`` the mirror.
See docs/nsr.md.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import Any

from .. import __version__
from ..addr import canonical_ip as _norm
from ..log import log_event
from . import netlock, tcp_repair
from . import vip as _vip
from .ribmirror import MirrorReader, MirrorWriter
from .store import FeedTruncated, Lease, LeaseConflict, StoreError, StoreUnavailable, open_store

log = logging.getLogger("fcr.nsr")

LEASE = "routing-engine"
NS = "nsr"
NS_SESSION = "nsr.session"
NS_DELTA = "nsr.ribdelta"   # RIB mirror deltas (appliance/nsr/ribmirror.py), key "<epoch>-<n>"
NS_BASE = "nsr.ribbase"     # RIB mirror bases, one per neighbor
MIRROR_TICK = 0.1           # s: the active engine turns its journals into deltas this often
MIRROR_DELTAS = 4           # deltas per tick at most (each DELTA_KEYS keys), the loop yields between
MIRROR_WAIT = 3.0           # s: a release waits this long for the standby to apply the last delta
MIRROR_COMPACT = 10.0       # s: the feed's tombstones of applied deltas are dropped this often
LEASE_TTL = 10.0            # s: an owner that stops renewing loses its sessions after this
STANDBY_POLL = 0.05          # s: a standby looks at the lease this often (adopts when it is its)
STORE_WAIT = 3.0            # s: status and switchover preconditions wait this long for the store
STANDBY_FRESH = 5.0         # s: a standby heartbeat older than this is not in sync
DRAIN_TIMEOUT = 2.0
FAULT_ENV = "FCR_NSR_FAULT"  # tests: "adopt-after-restore" / "release-after-dump" die half-way;
#                             "mirror-stall": a standby stops applying the RIB mirror once synced


class SwitchoverRefused(Exception):
    """The switchover was not started; the sessions are as they were (reason in text)."""


class NsrAgent:
    def __init__(self, engine: Any, store_url: str, engine_id: str, *, standby: bool = False,
                 lease_ttl: float = LEASE_TTL) -> None:
        self.engine = engine
        self.lease_ttl = lease_ttl
        self.store_url = store_url
        self.engine_id = engine_id
        self.role = "standby" if standby else "active"
        self.lease: Lease | None = None
        self.fenced = False
        self.last_switchover: dict[str, Any] | None = None
        self.store_error = ""
        self._store: Any = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fcr-nsr-store")
        self._task: asyncio.Task[None] | None = None
        # what this engine released, kept to resume if the new engine fails
        self._released: dict[str, Any] | None = None
        self.on_adopted: Any = None  # called once the sessions are adopted (fcrd: control path)
        self._adopt_lock = asyncio.Lock()
        self._adopted: dict[str, Any] | None = None
        self._beat = 0.0
        # RIB mirror (appliance/nsr/ribmirror.py): the writer on the active engine, the
        # reader on a standby; see _mirror_loop and _mirror_tail
        self._mirror_task: asyncio.Task[None] | None = None
        self._mirror_gen = 0
        self._mirror_lock = asyncio.Lock()
        self._writer: MirrorWriter | None = None
        self._mseq = 0
        self._mirror_written = 0   # store sequence of the last mirror batch written
        self._compacted = 0.0
        self._served: list[str] = []
        self._unacked: list[tuple[int, str]] = []
        self._reader: MirrorReader | None = None
        self._mirror_req = ""
        self._mirror_applied = 0
        self._mirror_synced = False

    # -- store access (one thread) ---------------------------------------------------
    async def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kw))

    async def _quick(self, fn: Any, *args: Any) -> Any:
        """A store call for status and preconditions: a store that does not answer within
        STORE_WAIT s counts as unreachable (the call itself finishes in the background)."""
        try:
            return await asyncio.wait_for(self._call(fn, *args), STORE_WAIT)
        except TimeoutError:
            raise StoreUnavailable(f"checkpoint store {self.store_url} did not answer within "
                                   f"{STORE_WAIT:.0f} s") from None

    def _open(self) -> Any:
        if self._store is None:
            self._store = open_store(self.store_url)
        return self._store

    async def store(self) -> Any:
        try:
            st = await self._quick(self._open)
        except StoreError as exc:
            self.store_error = str(exc)
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to open is "unreachable"
            self.store_error = str(exc)
            raise StoreUnavailable(f"checkpoint store {self.store_url}: {exc}") from exc
        self.store_error = ""
        return st

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        try:
            st = await self.store()
            if self.role == "active":
                self.lease = await self._call(st.acquire_lease, LEASE, self.engine_id, self.lease_ttl)
                log_event(log, "nsr.lease", owner=self.engine_id, epoch=self.lease.epoch)
            else:
                await self._heartbeat()
        except LeaseConflict as exc:
            log_event(log, "nsr.lease-held", level=logging.WARNING, error=str(exc))
        except StoreError as exc:
            log_event(log, "nsr.store-unavailable", level=logging.WARNING, error=str(exc))
        self._task = asyncio.get_running_loop().create_task(self._keeper())
        self._start_mirror()

    def _start_mirror(self) -> None:
        if self._mirror_task is not None:
            self._mirror_task.cancel()
        # a generation, not only the cancel, ends a mirror task: Python 3.11's wait_for
        # (in _quick) can swallow a cancellation that meets its result
        self._mirror_gen += 1
        gen = self._mirror_gen
        body = self._mirror_tail(gen) if self.role == "standby" else self._mirror_loop(gen)
        self._mirror_task = asyncio.get_running_loop().create_task(body)

    async def stop(self) -> None:
        await self._stop_mirror()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)
        if self._store is not None:
            with contextlib.suppress(Exception):
                await self._call(self._store.close)
        self._pool.shutdown(wait=False)

    async def _keeper(self) -> None:
        """Renew the lease (active) or the heartbeat (standby). A renewal refused because
        someone holds a newer epoch fences this engine: it goes silent."""
        while True:
            await asyncio.sleep(self.lease_ttl / 4 if self.role == "active" else STANDBY_POLL)
            try:
                st = await self.store()
                if self.role == "active" and not self.fenced:
                    if self.lease is None:
                        self.lease = await self._call(st.acquire_lease, LEASE, self.engine_id, self.lease_ttl)
                    else:
                        self.lease = await self._call(st.renew, self.lease, self.lease_ttl)
                elif self.role == "standby":
                    if time.monotonic() - self._beat >= 1.0:
                        await self._heartbeat()
                    lease = await self._call(st.get_lease, LEASE)
                    if lease is not None and lease.owner == self.engine_id:
                        await self.adopt()  # released to us (a controller's switchover RPC)
            except LeaseConflict as exc:
                if self.lease is not None:
                    await self._fence(str(exc))
            except StoreError as exc:
                log_event(log, "nsr.store-unavailable", level=logging.WARNING, error=str(exc))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the keeper must keep going
                log_event(log, "nsr.keeper-error", level=logging.ERROR, error=repr(exc))

    async def _heartbeat(self) -> None:
        self._beat = time.monotonic()
        st = await self.store()
        rec = {"engine-id": self.engine_id, "ready": self.engine.rib is not None,
               "config-digest": self.engine.config_digest, "pid": os.getpid(),
               "version": __version__, "time": time.time()}
        await self._call(st.put, NS, f"standby/{self.engine_id}", rec)

    async def _fence(self, why: str) -> None:
        """Someone else owns the sessions (a newer epoch): say nothing more on them. Each
        connection is frozen and closed in repair mode (no FIN, no RST); the BFD sessions
        go silent; the FIB is left alone."""
        self.fenced = True
        self.role = "fenced"
        log_event(log, "nsr.fenced", level=logging.WARNING, reason=why)
        sp = self.engine.bgp
        if sp is None:
            return
        keys = [k for k, p in sp.peers.items() if p.state == "Established"]
        tuples = []
        socks = []
        for k in keys:
            with contextlib.suppress(Exception):
                sp.peers[k].handover_pause()
                t = sp.peers[k].four_tuple
                sock, _snap = sp.handover_detach(k)
                socks.append(sock)
                tuples.append(t)
        if tuples:
            with contextlib.suppress(Exception):
                netlock.NetLock(tuples, table=f"{netlock.TABLE_PREFIX}_fenced").acquire()
        await self._drop_held(keys)
        for sock in socks:
            with contextlib.suppress(Exception):
                tcp_repair.close_silently(sock)
        if self.engine.bfd is not None:
            with contextlib.suppress(Exception):
                await self._call(self.engine.bfd.export_sessions)
        for p in sp.peers.values():  # no reconnect attempts from a fenced engine
            with contextlib.suppress(Exception):
                p.stop()

    # -- RIB mirror (appliance/nsr/ribmirror.py) ---------------------------------------------
    async def _mirror_acks(self, fresh_only: bool = True) -> dict[str, dict[str, Any]]:
        """Standbys' mirror records (``mirror/<id>``: applied store sequence, synced, the
        base they asked for), by engine id; only live ones unless ``fresh_only`` is False."""
        st = await self.store()
        recs = await self._quick(lambda: list(st.scan(NS, "mirror/")))
        now = time.time()
        # not our own: an engine that was a standby until it adopted
        return {r.key.split("/", 1)[1]: r.value for r in recs
                if r.key != f"mirror/{self.engine_id}"
                and (not fresh_only or now - r.value.get("time", 0) < STANDBY_FRESH)}

    async def _mirror_flush(self, acks: dict[str, dict[str, Any]], *, final: bool = False) -> int:
        """Active: write the journals out as deltas (``final``: all of them, else at most
        MIRROR_DELTAS), bases for neighbors that need one, and delete deltas every live
        standby has applied. Returns the store's sequence after the write. The caller
        holds _mirror_lock."""
        sp = self.engine.bgp
        lease = self.lease
        if sp is None or lease is None:
            return 0
        st = await self.store()
        if self._writer is None:
            self._writer = MirrorWriter(sp)
        w = self._writer
        wanted = {r["want-base"] for r in acks.values() if r.get("want-base")} - set(self._served)
        if wanted:
            w.invalidate()
        records: list[tuple[str, str, Any]] = []
        n = 0
        while final or n < MIRROR_DELTAS:
            d = w.delta()
            if d is None:
                break
            self._mseq += 1
            n += 1
            records.append((NS_DELTA, f"{lease.epoch:08d}-{self._mseq:012d}", d))
            await asyncio.sleep(0)  # keepalives and reads between two deltas
        for key in w.needs_base():
            records.append((NS_BASE, key, w.base(key)))
            await asyncio.sleep(0)  # one neighbor's table at a time: keepalives in between
        if wanted:
            self._served = [*self._served, *sorted(wanted)][-16:]
            records.append((NS, "mirror-writer", {"engine-id": self.engine_id, "epoch": lease.epoch,
                                                  "served": self._served, "time": time.time()}))
        applied = min((int(r.get("applied") or 0) for r in acks.values()), default=0)
        deletes = [(NS_DELTA, k) for sq, k in self._unacked if sq <= applied]
        if records or deletes:
            seq = await self._call(st.put_many, records, deletes=deletes, fence=lease)
            self._unacked = [(sq, k) for sq, k in self._unacked if sq > applied]
            self._unacked.extend((seq, k) for ns, k, _v in records if ns == NS_DELTA)
            if records:  # (a batch of deletes only is nothing a standby applies)
                self._mirror_written = seq
        if deletes and applied and time.monotonic() - self._compacted > MIRROR_COMPACT:
            # deleted deltas leave tombstones in the feed; every live standby is past them
            self._compacted = time.monotonic()
            await self._call(st.compact, applied)
        return self._mirror_written

    async def _mirror_loop(self, gen: int) -> None:
        """Active: while a standby is alive, keep its copy of the RIBs current (a few
        deltas per MIRROR_TICK); with none, take the journals out."""
        acks: dict[str, dict[str, Any]] = {}
        scanned = 0.0
        while gen == self._mirror_gen:
            await asyncio.sleep(MIRROR_TICK)
            try:
                if self.role != "active" or self.fenced or self.lease is None or self.engine.bgp is None:
                    continue
                if time.monotonic() - scanned >= 0.5:
                    scanned = time.monotonic()
                    acks = await self._mirror_acks()
                if not acks:
                    if self._writer is not None:
                        self._writer.stop()
                        self._writer = None
                    continue
                async with self._mirror_lock:
                    await self._mirror_flush(acks)
            except asyncio.CancelledError:
                raise
            except LeaseConflict:
                pass  # the keeper fences us
            except StoreError as exc:
                log_event(log, "nsr.mirror-store", level=logging.WARNING, error=str(exc))
            except Exception as exc:  # noqa: BLE001 - the mirror must keep going
                log_event(log, "nsr.mirror-error", level=logging.ERROR, error=repr(exc))

    async def _wait_mirror(self, st: Any, to: str, seq: int) -> None:
        """Release: the standby ``to`` must have applied everything up to ``seq``."""
        end = time.monotonic() + MIRROR_WAIT
        applied = 0
        while True:
            rec = await self._quick(st.get, NS, f"mirror/{to}")
            applied = int(rec.value.get("applied") or 0) if rec is not None else 0
            if applied >= seq:
                return
            if time.monotonic() > end:
                raise SwitchoverRefused(f"standby {to!r} lags: its copy of the RIBs is at store sequence "
                                        f"{applied}, the active engine's at {seq} after {MIRROR_WAIT:.0f} s")
            await asyncio.sleep(0.005)

    async def _mirror_tail(self, gen: int) -> None:
        """Standby: follow the store's change feed and apply the active engine's bases and
        deltas to this engine's RIBs; acknowledge what is applied in ``mirror/<id>``."""
        while self.engine.bgp is None:
            await asyncio.sleep(STANDBY_POLL)
        self._reader = MirrorReader(self.engine.bgp)
        since = -1
        acked: tuple[int, bool] | None = None
        t_ack = 0.0
        while self.role == "standby" and gen == self._mirror_gen:
            try:
                st = await self.store()
                if since < 0:  # (re)start: ask the active engine for a whole copy
                    since = await self._call(st.last_seq)
                    self._mirror_req = uuid.uuid4().hex
                    self._mirror_synced = False
                    self._mirror_applied = 0
                    acked = None
                now = time.monotonic()
                state = (self._mirror_applied, self._mirror_synced)
                if (state != acked and now - t_ack >= 0.01) or now - t_ack >= 1.0:
                    await self._call(st.put, NS, f"mirror/{self.engine_id}", {
                        "engine-id": self.engine_id, "applied": self._mirror_applied, "synced": self._mirror_synced,
                        "want-base": self._mirror_req, "time": time.time()})
                    acked, t_ack = state, now
                if self._mirror_synced and os.environ.get(FAULT_ENV) == "mirror-stall":
                    await asyncio.sleep(0.05)  # tests: a standby that stops following
                    continue
                chunk = await self._call(lambda s=since, st=st: list(st.changes(s, limit=64)))
            except asyncio.CancelledError:
                raise
            except FeedTruncated:
                since = -1
                continue
            except StoreError as exc:
                log_event(log, "nsr.mirror-store", level=logging.WARNING, error=str(exc))
                await asyncio.sleep(0.2)
                continue
            if not chunk:
                await asyncio.sleep(0.005)
                continue
            for ch in chunk:
                if gen != self._mirror_gen:
                    return  # stopped (an adopt took the RIBs as they are)
                since = ch.seq
                if ch.value is None:
                    # a delta every standby applied, deleted: nothing to do, but the active
                    # engine's last write (its ``written``) may end with such deletes
                    if ch.ns in (NS_DELTA, NS_BASE):
                        self._mirror_applied = ch.seq
                    continue
                if ch.ns == NS_DELTA:
                    self._reader.apply_delta(ch.value)
                elif ch.ns == NS_BASE:
                    self._reader.apply_base(ch.key, ch.value)
                elif ch.ns == NS and ch.key == "mirror-writer":
                    if self._mirror_req in ch.value.get("served", []):
                        self._mirror_synced = True
                else:
                    continue
                self._mirror_applied = ch.seq
                await asyncio.sleep(0)  # bases can be large: let the lease poll run

    async def _mirror_caught_up(self, seq: int) -> None:
        """Adopt: the mirror must have applied the old engine's last delta; then it stops
        (the RIBs are this engine's from here)."""
        end = time.monotonic() + MIRROR_WAIT
        while self._mirror_applied < seq or not self._mirror_synced:
            if time.monotonic() > end or self._mirror_task is None or self._mirror_task.done():
                raise SwitchoverRefused(f"this engine's copy of the RIBs is at store sequence "
                                        f"{self._mirror_applied}, the handover needs {seq}")
            await asyncio.sleep(0.002)
        await self._stop_mirror()

    async def _stop_mirror(self) -> None:
        task, self._mirror_task = self._mirror_task, None
        self._mirror_gen += 1
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)

    # -- status ---------------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "engine-id": self.engine_id, "role": self.role, "store": self.store_url,
            "active": self.role == "active" and self.lease is not None and not self.fenced,
            "epoch": self.lease.epoch if self.lease else None, "pid": os.getpid(),
        }
        try:
            st = await self.store()
            lease = await self._quick(st.get_lease, LEASE)
            out["store-connected"] = True
            out["lease"] = None if lease is None else {"owner": lease.owner, "epoch": lease.epoch}
            standbys = await self._quick(lambda: list(st.scan(NS, "standby/")))
            mirrors = await self._mirror_acks(fresh_only=False)
            now = time.time()
            out["standbys"] = []
            for r in standbys:
                sid = r.value.get("engine-id")
                if sid == self.engine_id:
                    continue
                m = mirrors.get(sid, {})
                same_config = r.value.get("config-digest") == self.engine.config_digest
                out["standbys"].append(dict(
                    r.value, fresh=now - r.value.get("time", 0) < STANDBY_FRESH,
                    **{"rib-mirror": {k: m.get(k) for k in ("synced", "applied")},
                       "config-synchronized": same_config,
                       "synchronized": same_config and bool(m.get("synced"))}))
        except StoreError as exc:
            out["store-connected"] = False
            out["store-error"] = str(exc)
        sp = self.engine.bgp
        out["sessions"] = sorted(k for k, p in sp.peers.items() if p.state == "Established") if sp else []
        out["last-switchover"] = self.last_switchover
        if self.role == "standby":
            out["rib-mirror"] = {"applied": self._mirror_applied, "synced": self._mirror_synced,
                                 "neighbors": len(self._reader.based) if self._reader else 0}
        elif self._writer is not None:
            out["rib-mirror"] = {"written": self._mirror_written, "journaled-keys": self._writer.pending()}
        return out

    # -- the active side ----------------------------------------------------------------
    async def _check_target(self, st: Any, to: str | None) -> str:
        recs = await self._quick(lambda: list(st.scan(NS, "standby/")))
        now = time.time()
        cands = {r.value.get("engine-id"): r.value for r in recs if r.value.get("engine-id") != self.engine_id}
        if to is None:
            fresh = [k for k, v in cands.items() if now - v.get("time", 0) < STANDBY_FRESH]
            if len(fresh) != 1:
                raise SwitchoverRefused(f"no single live standby to hand over to (live: {sorted(fresh)})")
            to = fresh[0]
        rec = cands.get(to)
        if rec is None:
            raise SwitchoverRefused(f"standby {to!r} is not registered in the checkpoint store")
        if now - rec.get("time", 0) >= STANDBY_FRESH:
            raise SwitchoverRefused(f"standby {to!r} is not alive (last heartbeat "
                                    f"{now - rec.get('time', 0):.1f} s ago)")
        if not rec.get("ready"):
            raise SwitchoverRefused(f"standby {to!r} has not finished starting")
        if rec.get("config-digest") != self.engine.config_digest:
            raise SwitchoverRefused(f"standby {to!r} is not synchronized: its configuration differs "
                                    "from the active engine's")
        m = (await self._mirror_acks()).get(to)
        if m is None or not m.get("synced"):
            raise SwitchoverRefused(f"standby {to!r} is not synchronized: its copy of the RIBs "
                                    "has not caught up yet")
        return to

    async def release(self, to: str | None = None, *, keep_frozen: bool = True,
                      vip: dict[str, str] | None = None) -> dict[str, Any]:
        """Hand every Established session to the standby ``to`` (see the module doc).
        Refused (SwitchoverRefused / StoreError, nothing changed) before the freeze.
        ``vip`` ({"address": "10.0.92.1/24", "dev": "eth0"}): the sessions move to another
        box with their local address; it is named in the handover record, removed here
        once the sockets are closed silently, and then the freeze is lifted (nothing can
        reach a socket-less 4-tuple here any more: the address is gone)."""
        eng = self.engine
        sp = eng.bgp
        if self.role != "active" or self.fenced:
            raise SwitchoverRefused(f"this engine is {self.role}, not the active one")
        try:
            vip_ = _vip.from_params(vip)
        except _vip.VipError as exc:
            raise SwitchoverRefused(str(exc)) from None
        t0 = time.monotonic()
        try:
            st = await self.store()
            lease = self.lease
            if lease is None or not await self._quick(st.check, lease):
                raise SwitchoverRefused("this engine does not hold the ownership lease")
            to = await self._check_target(st, to)
        except StoreError as exc:
            raise SwitchoverRefused(f"checkpoint store unreachable: {exc}") from exc
        keys = sp.handover_pause() if sp is not None else []
        timing: dict[str, float] = {}
        mirror_seq = 0
        try:
            # reads and UPDATE output are paused: the RIBs are fixed from here. The standby
            # already has them (the mirror); it gets the last delta and must apply it
            # before anything is frozen, else the switchover is refused (it lags).
            states = {k: sp.handover_state(k) for k in keys}
            timing["rib-state"] = time.monotonic() - t0
            if sp is not None:
                async with self._mirror_lock:
                    mirror_seq = await self._mirror_flush(await self._mirror_acks(), final=True)
                timing["mirror-flushed"] = time.monotonic() - t0
                await self._wait_mirror(st, to, mirror_seq)
                timing["standby-synced"] = time.monotonic() - t0
            await asyncio.gather(*(sp.peers[k].handover_drain(DRAIN_TIMEOUT) for k in keys))
        except BaseException as exc:
            sp.handover_resume(keys)
            if isinstance(exc, StoreError):
                raise SwitchoverRefused(f"checkpoint store failed: {exc}") from exc
            raise
        # -- from here the peers may notice a pause: keep it short ------------------------
        tuples = [sp.peers[k].four_tuple for k in keys]
        lock = netlock.NetLock(tuples)
        if tuples:
            for k in keys:
                sp.peers[k].flush_acks()
            await asyncio.get_running_loop().run_in_executor(None, lock.acquire)
        t_freeze = time.monotonic()
        detached: dict[str, tuple[socket.socket, dict, tcp_repair.TcpState]] = {}
        try:
            for k in keys:
                sock, snap = sp.handover_detach(k)
                detached[k] = (sock, snap, None)  # type: ignore[assignment]  # dumped next
                detached[k] = (sock, snap, tcp_repair.dump(sock))
            if os.environ.get(FAULT_ENV) == "release-after-dump":  # tests: killed mid-release
                log_event(log, "nsr.fault-injected", point="release-after-dump")
                os._exit(70)
            timing["dumped"] = time.monotonic() - t0
            bfd = await self._export_bfd()
            timing["bfd-exported"] = time.monotonic() - t0
            epoch = lease.epoch + 1
            records = [(NS_SESSION, k, {"epoch": epoch, "to": to, "bgp": snap, "tcp": tcp.to_dict(),
                                        "bfd": bfd.get(_norm(k)), "rib": states[k]})
                       for k, (_s, snap, tcp) in detached.items()]
            handover = {"from": self.engine_id, "to": to, "epoch": epoch, "peers": keys,
                        "mirror-seq": mirror_seq,
                        "freeze-table": lock.table if tuples else None, "time": time.time(),
                        "vip": dict(vip) if vip_ else None,
                        "bfd-other": {p: v for p, v in bfd.items() if p not in {_norm(k) for k in keys}}}
            await self._call(st.put_many, [*records, (NS, "handover", handover)], fence=lease)
            timing["written"] = time.monotonic() - t0
            new_lease = await self._call(st.transfer, LEASE, lease, to, self.lease_ttl)
        except BaseException as exc:
            # nothing was handed over: take the sessions back from our own dump
            log_event(log, "nsr.release-failed", level=logging.ERROR, error=repr(exc))
            await self._readopt(detached, lock, bfd=locals().get("bfd") or {})
            if isinstance(exc, (StoreError, LeaseConflict)):
                raise SwitchoverRefused(f"switchover abandoned, sessions kept: {exc}") from exc
            raise
        self.lease = None
        self.role = "released"
        await self._drop_held(list(detached))
        for sock, _snap, _tcp in detached.values():
            with contextlib.suppress(OSError):
                tcp_repair.close_silently(sock)
        if sp.listener is not None:
            with contextlib.suppress(Exception):
                await _maybe_await(sp.listener.close())
            sp.listener = None
        if vip_ is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, lambda: _vip.remove(*vip_))
                keep_frozen = False  # the address is gone: nothing can reach the 4-tuples
            except _vip.VipError as exc:  # keep the freeze: no RST from this box
                log_event(log, "nsr.vip-remove-failed", level=logging.ERROR, error=str(exc))
            timing["vip-removed"] = time.monotonic() - t0
        if not keep_frozen and tuples:
            await asyncio.get_running_loop().run_in_executor(None, lock.release)
        self._released = {"records": {k: (snap, tcp) for k, (_s, snap, tcp) in detached.items()},
                          "lock": lock, "bfd": bfd, "to": to, "epoch": new_lease.epoch, "vip": vip_}
        timing["frozen-at"] = t_freeze - t0
        timing["released"] = time.monotonic() - t0
        self.last_switchover = {"time": time.time(), "to": to, "result": "released",
                                "epoch": new_lease.epoch, "timing": timing}
        log_event(log, "nsr.released", to=to, epoch=new_lease.epoch, peers=len(keys),
                  **{k: round(v, 4) for k, v in timing.items()})
        return {"to": to, "epoch": new_lease.epoch, "peers": keys, "timing": timing,
                "freeze-table": lock.table if tuples else None}

    async def _drop_held(self, keys: list[str]) -> None:
        """With the crash guard (fcrd --nsr-holder, crash.py) the holder keeps a duplicate
        of each session socket: it must be gone before the sockets are closed in repair
        mode, or their 4-tuples could not be restored by the new owner."""
        hooks = getattr(self.engine, "nsr_hooks", None)
        if hooks is not None and keys:
            try:
                await hooks.drop_now(list(keys))
            except Exception as exc:  # noqa: BLE001 - the holder closes them at its grace end
                log_event(log, "nsr.holder-drop-failed", level=logging.WARNING, error=repr(exc))

    async def _export_bfd(self) -> dict[str, Any]:
        bfd = self.engine.bfd
        if bfd is None or not hasattr(bfd, "export_sessions"):
            return {}
        return {_norm(p): v for p, v in (await self._call(bfd.export_sessions)).items()}

    async def _readopt(self, detached: dict, lock: netlock.NetLock, bfd: dict) -> None:
        """Undo a failed release: our own sockets are still open (repair mode)."""
        sp = self.engine.bgp
        sessions = {}
        for k, (sock, snap, _tcp) in detached.items():
            with contextlib.suppress(OSError):
                tcp_repair.leave_repair(sock, window_probe=False)
            sessions[k] = (snap, None, sock)  # None: our own RIBs, untouched
        with contextlib.suppress(Exception):
            await asyncio.get_running_loop().run_in_executor(None, lock.release)
        if sessions:
            await sp.adopt_sessions(sessions)
        await self._adopt_bfd(bfd)

    async def resume(self) -> dict[str, Any]:
        """The new engine failed after the lease moved: take the lease back and restore
        our own checkpoint (the 4-tuples are still frozen)."""
        rel = self._released
        if rel is None:
            raise SwitchoverRefused("nothing was released by this engine")
        st = await self.store()
        cur = await self._call(st.get_lease, LEASE)
        if cur is None or cur.epoch != rel["epoch"]:
            raise SwitchoverRefused(f"the lease moved on (epoch {cur.epoch if cur else None}, "
                                    f"released at {rel['epoch']}): not resuming")
        self.lease = await self._call(st.transfer, LEASE, cur, self.engine_id, self.lease_ttl)
        self.role = "active"
        lock = rel["lock"]
        if rel.get("vip") is not None:  # the address left with the sessions: freeze, take it back
            loop = asyncio.get_running_loop()
            if lock.tuples:
                await loop.run_in_executor(None, lock.acquire)
            await loop.run_in_executor(None, lambda: _vip.add(*rel["vip"]))
        socks = {}
        for k, (snap, tcp) in rel["records"].items():
            socks[k] = (snap, None, self._restore_socket(k, tcp))  # our own RIBs, untouched
        with contextlib.suppress(Exception):
            await asyncio.get_running_loop().run_in_executor(None, lock.release)
        for _snap, _rib, sock in socks.values():
            tcp_repair.leave_repair(sock)
        await self.engine.bgp.adopt_sessions(socks)
        await self._adopt_bfd(rel["bfd"])
        sp = self.engine.bgp
        if sp.listener is None and sp.config.global_.listen_addresses:
            await sp._listen()
        self._released = None
        self.last_switchover = {"time": time.time(), "result": "resumed", "epoch": self.lease.epoch}
        log_event(log, "nsr.resumed", epoch=self.lease.epoch, peers=len(socks))
        return {"epoch": self.lease.epoch, "peers": sorted(socks)}

    def _restore_socket(self, key: str, tcp: tcp_repair.TcpState) -> socket.socket:
        n = self.engine.bgp.peers[key].config
        return tcp_repair.restore(tcp, md5_key=n.tcp_md5_key, leave_repair_mode=False)

    async def _adopt_bfd(self, exported: dict[str, Any]) -> None:
        if not exported:
            return
        eng = self.engine
        if eng.bfd is None:
            await eng.nsr_start_bfd()
        if eng.bfd is not None and hasattr(eng.bfd, "adopt_sessions"):
            await self._call(eng.bfd.adopt_sessions, exported)

    # -- the standby side ----------------------------------------------------------------
    async def adopt(self, vip: dict[str, str] | None = None) -> dict[str, Any]:
        """Take over the sessions the active engine released to this one (once: a second
        call for the same handover returns the first one's result). ``vip`` ({"address",
        "dev"}; default: the one named in the handover record) is the sessions' local
        address, coming from another box: the 4-tuples are frozen here, the address added
        (gratuitous ARP / unsolicited NA), the sockets restored, then the freeze lifted, so
        nothing that arrives meets this kernel without the socket (it would answer RST)."""
        async with self._adopt_lock:
            if self._adopted is not None and self.role == "active":
                return self._adopted
            try:
                self._adopted = await self._adopt(vip)
            except BaseException:
                if self.role == "standby" and (self._mirror_task is None or self._mirror_task.done()):
                    self._start_mirror()  # not adopted: follow the active engine again
                raise
            return self._adopted

    async def _adopt(self, vip: dict[str, str] | None = None) -> dict[str, Any]:
        eng = self.engine
        sp = eng.bgp
        if self.role != "standby":
            raise SwitchoverRefused(f"this engine is {self.role}, not a standby")
        t0 = time.monotonic()
        st = await self.store()
        lease = await self._call(st.get_lease, LEASE)
        if lease is None or lease.owner != self.engine_id:
            raise SwitchoverRefused(f"the sessions were not handed to {self.engine_id} "
                                    f"(lease: {lease.owner if lease else None})")
        lease = await self._call(st.renew, lease, self.lease_ttl)
        self.lease = lease
        t_lease = time.monotonic()
        rec = await self._call(st.get, NS, "handover")
        ho = rec.value if rec else {}
        if ho.get("epoch") != lease.epoch:
            raise SwitchoverRefused(f"handover record is for epoch {ho.get('epoch')}, lease is {lease.epoch}")
        keys = list(ho.get("peers", []))

        def read_all() -> dict[str, dict]:
            got = {r.key: r.value for r in st.scan(NS_SESSION)}  # one query, not one per session
            out = {}
            for k in keys:
                s = got.get(k)
                if s is None or s.get("epoch") != lease.epoch:
                    raise SwitchoverRefused(f"{k}: no checkpoint of epoch {lease.epoch}")
                out[k] = s
            return out

        recs = await self._call(read_all)
        t_scan = time.monotonic()
        await self._mirror_caught_up(ho.get("mirror-seq", 0))
        # an old engine killed after the lease moved but before it dropped its held
        # duplicates (crash.py) leaves them as orphans: their 4-tuples must be free
        await self._drop_held(keys)
        t_read = time.monotonic()
        try:
            vip_ = _vip.from_params(vip if vip is not None else ho.get("vip"))
        except _vip.VipError as exc:
            raise SwitchoverRefused(str(exc)) from None
        socks: dict[str, socket.socket] = {}
        local_lock: netlock.NetLock | None = None
        vip_added = False
        try:
            if vip_ is not None:
                loop = asyncio.get_running_loop()
                tuples = [tcp_repair.TcpState.from_dict(s["tcp"]).four_tuple() for s in recs.values()]
                if tuples:
                    local_lock = netlock.NetLock(tuples)
                    await loop.run_in_executor(None, local_lock.acquire)
                await loop.run_in_executor(None, lambda: _vip.add(*vip_))
                vip_added = True
                t_vip = time.monotonic()
            for k, s in recs.items():
                if sp is None or k not in sp.peers:
                    raise SwitchoverRefused(f"{k}: not a configured neighbor here")
                socks[k] = self._restore_socket(k, tcp_repair.TcpState.from_dict(s["tcp"]))
            if os.environ.get(FAULT_ENV) == "adopt-after-restore":
                log_event(log, "nsr.fault-injected", point="adopt-after-restore")
                os._exit(70)
            table = ho.get("freeze-table")
            if local_lock is not None:  # the old box's freeze is in its own namespace
                await asyncio.get_running_loop().run_in_executor(None, local_lock.release)
            elif table and vip_ is None:
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda: netlock.nft(["delete", "table", "inet", table], None,
                                              action=f"unfreeze {table}", check=False))
            for sock in socks.values():
                tcp_repair.leave_repair(sock)
        except BaseException:
            for sock in socks.values():
                with contextlib.suppress(OSError):
                    tcp_repair.close_silently(sock)
            if vip_added:  # address off first, then the freeze: no RST from this box
                with contextlib.suppress(Exception):
                    _vip.remove(*vip_)
            if local_lock is not None:
                with contextlib.suppress(Exception):
                    local_lock.release()
            raise
        t_restored = time.monotonic()
        self.role = "active"
        reader = self._reader
        adopted = await sp.adopt_sessions({k: (s["bgp"], s.get("rib") or {}, socks[k]) for k, s in recs.items()},
                                          interned=reader.interned if reader is not None else None)
        self._start_mirror()  # now the writer, for the next standby
        t_bgp = time.monotonic()
        bfd = {_norm(k): s["bfd"] for k, s in recs.items() if s.get("bfd")}
        bfd.update(ho.get("bfd-other") or {})
        await eng.nsr_activate(adopted, bfd)
        t_done = time.monotonic()
        timing = {"lease-renewed": t_lease - t0, "records-scanned": t_scan - t0,
                  "records-read": t_read - t0, "sockets-restored": t_restored - t0,
                  "bgp-adopted": t_bgp - t0, "done": t_done - t0}
        if vip_added:
            timing["vip-added"] = t_vip - t0
        self.last_switchover = {"time": time.time(), "from": ho.get("from"), "result": "adopted",
                                "epoch": lease.epoch, "timing": timing}
        log_event(log, "nsr.adopted", epoch=lease.epoch, peers=len(adopted),
                  **{k: round(v, 4) for k, v in timing.items()})
        with contextlib.suppress(StoreError):
            await self._call(st.put_many, (), deletes=[(NS, f"standby/{self.engine_id}"),
                                                       (NS, f"mirror/{self.engine_id}")])
        if self.on_adopted is not None:
            try:
                self.on_adopted()
            except Exception as exc:  # noqa: BLE001 - the sessions are ours whatever happens here
                log_event(log, "nsr.on-adopted-error", level=logging.ERROR, error=repr(exc))
        return {"epoch": lease.epoch, "peers": adopted, "timing": timing}


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value):
        await value
