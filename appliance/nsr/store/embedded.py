"""Embedded checkpoint store: one SQLite file in WAL mode (stdlib ``sqlite3``).

Layout (one file, plus its ``-wal`` and ``-shm``):

- ``records(seq INTEGER PRIMARY KEY AUTOINCREMENT, ns, key, value)`` with a unique index on
  ``(ns, key)``. A write is ``INSERT OR REPLACE``: the record's row is replaced by one with a
  new ``seq`` (AUTOINCREMENT never reuses a number, so ``seq`` only grows). ``value`` is a
  BLOB for bytes, TEXT (JSON) for a dict, NULL for a deleted record (a *tombstone*, kept
  until ``compact``) — one row per record, so a write costs one row and the change feed is
  ``WHERE seq > ? ORDER BY seq`` over the same table (a *compacted* feed: the latest change
  of each key).
- ``leases(resource PRIMARY KEY, owner, epoch, expires)``: never deleted (a release clears
  the owner), so an epoch never goes back.
- ``meta(name PRIMARY KEY, value)``: the feed floor, the boot id of the lease clock.

Every batch is one transaction taken with ``BEGIN IMMEDIATE`` (the database write lock), so
writers in several processes on one box (ISSU: old and new engine on the same path) are
serialised, sequence numbers follow commit order, and a lease compare-and-set is a read and
a write under one lock.

Durability when ``put_many`` returns (the transaction committed):

- ``durability="process"`` (default, ``synchronous=NORMAL``): the batch is in the WAL file in
  the kernel's page cache. It survives the crash or kill -9 of any process; a power loss or
  kernel crash can lose the last batches (never half of one: the WAL is checksummed, the
  file is never corrupt). On one box a power loss also kills every TCP session, so this is
  the level that NSR on one box needs.
- ``durability="power"`` (``synchronous=FULL``): the WAL is fsync'ed at every commit; the
  batch survives a power loss too.

Lease clock: ``CLOCK_BOOTTIME`` (shared by every process on the box, does not jump with NTP,
counts suspend). Leases written in an earlier boot are treated as expired (the boot id is kept
in ``meta``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .base import (
    Change,
    CheckpointStore,
    FeedTruncated,
    Lease,
    LeaseConflict,
    Record,
    StoreUnavailable,
    check_name,
    decode_value,
    encode_value,
)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, ns TEXT NOT NULL, key TEXT NOT NULL, value)",
    "CREATE UNIQUE INDEX IF NOT EXISTS records_key ON records(ns, key)",
    "CREATE TABLE IF NOT EXISTS leases("
    " resource TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch INTEGER NOT NULL,"
    " expires REAL NOT NULL, ttl REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value) WITHOUT ROWID",
)

_DURABILITY = {"process": "NORMAL", "power": "FULL"}


def _boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class EmbeddedStore(CheckpointStore):
    """``EmbeddedStore(path, durability="process"|"power", busy_timeout=5.0)``."""

    feed_compacted = True

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        durability: str = "process",
        busy_timeout: float = 5.0,
        clock: Callable[[], float] | None = None,
    ):
        if durability not in _DURABILITY:
            raise ValueError(f"durability must be one of {sorted(_DURABILITY)}, not {durability!r}")
        self.path = Path(path)
        self.durability = durability
        self._clock = clock or _boottime
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        if not self.path.parent.is_dir():
            raise StoreUnavailable(
                f"checkpoint store {self.path}: directory {self.path.parent} does not exist"
            )
        try:
            db = sqlite3.connect(
                str(self.path), timeout=busy_timeout, isolation_level=None,
                check_same_thread=False,
            )
            self._db = db
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreUnavailable(
                    f"checkpoint store {self.path}: cannot switch to WAL mode (got {mode})"
                )
            db.execute(f"PRAGMA synchronous={_DURABILITY[durability]}")
            # 64 MiB page cache, WAL checkpoints every ~40 MB instead of 4 MB (hot index pages
            # are copied back once per checkpoint, not once per 1000 pages), reads by mmap
            db.execute("PRAGMA cache_size=-65536")
            db.execute("PRAGMA wal_autocheckpoint=10000")
            db.execute("PRAGMA mmap_size=268435456")
            db.execute("BEGIN IMMEDIATE")
            try:
                for stmt in _SCHEMA:
                    db.execute(stmt)
                boot = _boot_id()
                row = db.execute("SELECT value FROM meta WHERE name='boot_id'").fetchone()
                if clock is None and (row is None or row[0] != boot):
                    # leases of an earlier boot: their CLOCK_BOOTTIME deadlines mean nothing now
                    db.execute("UPDATE leases SET expires=0")
                    db.execute("INSERT OR REPLACE INTO meta VALUES('boot_id', ?)", (boot,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._close_quietly()
            raise StoreUnavailable(
                f"checkpoint store {self.path}: cannot open for writing: {exc}"
            ) from exc

    # -- helpers ---------------------------------------------------------------------------

    def _close_quietly(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable(f"checkpoint store {self.path}: closed")
        return self._db

    def _unavailable(self, what: str, exc: sqlite3.Error) -> StoreUnavailable:
        return StoreUnavailable(f"checkpoint store {self.path}: {what} failed: {exc}")

    def _write_txn(self, what: str, body: Callable[[sqlite3.Connection], object]):
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._unavailable(what, exc) from exc
            try:
                result = body(db)
                db.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                self._rollback(db)
                raise self._unavailable(what, exc) from exc
            except BaseException:
                self._rollback(db)
                raise

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _read(self, what: str, sql: str, args: tuple) -> list[tuple]:
        with self._lock:
            try:
                return self._conn().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._unavailable(what, exc) from exc

    @staticmethod
    def _seq(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='records'").fetchone()
        return row[0] if row else 0

    def now(self) -> float:
        """The lease clock (seconds)."""
        return self._clock()

    # -- records ---------------------------------------------------------------------------

    def put_many(self, records, *, deletes=(), fence=None) -> int:
        # the hot path of checkpointing: one Python loop, no call per record for bytes values
        rows = []
        append = rows.append
        namespaces = set()
        for ns, key, value in records:
            if type(value) is not bytes:
                value = encode_value(value)
            if type(key) is not str or not key:
                check_name("key", key)
            namespaces.add(ns)
            append((ns, key, value))
        dels = []
        for ns, key in deletes:
            check_name("key", key)
            namespaces.add(ns)
            dels.append((ns, key))
        for ns in namespaces:
            check_name("ns", ns)

        def body(db: sqlite3.Connection) -> int:
            if fence is not None:
                self._check_fence(db, fence)
            if rows:
                db.executemany("INSERT OR REPLACE INTO records(ns, key, value) VALUES(?,?,?)", rows)
            if dels:
                db.executemany(
                    "INSERT OR REPLACE INTO records(ns, key, value)"
                    " SELECT ns, key, NULL FROM records"
                    " WHERE ns=? AND key=? AND value IS NOT NULL",
                    dels,
                )
            return self._seq(db)

        return self._write_txn("put_many", body)

    def _check_fence(self, db: sqlite3.Connection, fence: Lease) -> None:
        cur = self._lease_row(db, fence.resource)
        if (
            cur is None
            or cur.owner != fence.owner
            or cur.epoch != fence.epoch
            or cur.expires <= self._clock()
        ):
            raise LeaseConflict(
                f"fenced write refused: lease {fence.resource!r} epoch {fence.epoch} of"
                f" {fence.owner!r} is not current (store has {cur})",
                cur,
            )

    def get(self, ns: str, key: str) -> Record | None:
        rows = self._read(
            "get",
            "SELECT value, seq FROM records WHERE ns=? AND key=? AND value IS NOT NULL",
            (ns, key),
        )
        if not rows:
            return None
        value, seq = rows[0]
        return Record(ns, key, decode_value(value), seq)

    def scan(self, ns: str, prefix: str = "") -> Iterator[Record]:
        after = prefix
        first = True
        while True:
            rows = self._read(
                "scan",
                "SELECT key, value, seq FROM records WHERE ns=? AND key >= ? AND value IS NOT NULL"
                " ORDER BY key LIMIT 5000" if first else
                "SELECT key, value, seq FROM records WHERE ns=? AND key > ? AND value IS NOT NULL"
                " ORDER BY key LIMIT 5000",
                (ns, after),
            )
            first = False
            for key, value, seq in rows:
                if not key.startswith(prefix):
                    return
                yield Record(ns, key, decode_value(value), seq)
            if len(rows) < 5000:
                return
            after = rows[-1][0]

    def last_seq(self) -> int:
        rows = self._read("last_seq", "SELECT seq FROM sqlite_sequence WHERE name='records'", ())
        return rows[0][0] if rows else 0

    # -- change feed -----------------------------------------------------------------------

    def _floor(self) -> int:
        rows = self._read("changes", "SELECT value FROM meta WHERE name='floor'", ())
        return rows[0][0] if rows else 0

    def changes(self, since_seq=0, *, follow=False, poll_interval=0.005, limit=None, timeout=None):
        # since_seq 0 is always served: the compacted feed from 0 is the whole current state
        floor = self._floor()
        if 0 < since_seq < floor:
            raise FeedTruncated(
                f"checkpoint store {self.path}: changes since {since_seq} were compacted"
                f" (floor {floor}); resynchronise from a scan",
                floor,
            )
        return self._changes(since_seq, follow, poll_interval, limit, timeout)

    def _changes(self, seq, follow, poll_interval, limit, timeout) -> Iterator[Change]:
        given = 0
        idle_since = time.monotonic()
        while limit is None or given < limit:
            n = 5000 if limit is None else min(5000, limit - given)
            rows = self._read(
                "changes",
                "SELECT seq, ns, key, value FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, n),
            )
            for s, ns, key, value in rows:
                yield Change(s, ns, key, decode_value(value))
            given += len(rows)
            if rows:
                seq = rows[-1][0]
                idle_since = time.monotonic()
                if len(rows) == n:
                    continue
            if not follow:
                return
            if timeout is not None and time.monotonic() - idle_since >= timeout:
                return
            time.sleep(poll_interval)

    def compact(self, upto_seq: int) -> int:
        def body(db):
            db.execute("DELETE FROM records WHERE value IS NULL AND seq <= ?", (upto_seq,))
            row = db.execute("SELECT value FROM meta WHERE name='floor'").fetchone()
            floor = max(row[0] if row else 0, upto_seq)
            db.execute("INSERT OR REPLACE INTO meta VALUES('floor', ?)", (floor,))
            return floor

        return self._write_txn("compact", body)

    # -- leases ----------------------------------------------------------------------------

    @staticmethod
    def _lease_row(db: sqlite3.Connection, resource: str) -> Lease | None:
        row = db.execute(
            "SELECT owner, epoch, expires, ttl FROM leases WHERE resource=?", (resource,)
        ).fetchone()
        if row is None:
            return None
        return Lease(resource, row[0], row[1], row[2], row[3])

    @staticmethod
    def _store_lease(db: sqlite3.Connection, lease: Lease) -> Lease:
        db.execute(
            "INSERT OR REPLACE INTO leases(resource, owner, epoch, expires, ttl) VALUES(?,?,?,?,?)",
            (lease.resource, lease.owner, lease.epoch, lease.expires, lease.ttl),
        )
        return lease

    def acquire_lease(self, resource: str, owner: str, ttl: float) -> Lease:
        check_name("resource", resource)
        check_name("owner", owner)
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0, not {ttl!r}")

        def body(db):
            now = self._clock()
            cur = self._lease_row(db, resource)
            if cur is None:
                epoch = 1
            elif cur.owner == owner:
                epoch = cur.epoch  # the holder again: a renewal
            elif cur.owner == "" or cur.expires <= now:
                epoch = cur.epoch + 1
            else:
                raise LeaseConflict(
                    f"lease {resource!r} is held by {cur.owner!r} (epoch {cur.epoch},"
                    f" {cur.expires - now:.3f} s left)",
                    cur,
                )
            return self._store_lease(db, Lease(resource, owner, epoch, now + ttl, ttl))

        return self._write_txn("acquire_lease", body)

    def _current_term(self, db, lease: Lease, what: str) -> Lease:
        cur = self._lease_row(db, lease.resource)
        if cur is None or cur.owner != lease.owner or cur.epoch != lease.epoch:
            raise LeaseConflict(
                f"{what} refused: lease {lease.resource!r} epoch {lease.epoch} of"
                f" {lease.owner!r} is stale (store has {cur})",
                cur,
            )
        return cur

    def renew(self, lease: Lease, ttl: float | None = None) -> Lease:
        ttl = lease.ttl if ttl is None else ttl
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0, not {ttl!r}")

        def body(db):
            self._current_term(db, lease, "renew")
            new = Lease(lease.resource, lease.owner, lease.epoch, self._clock() + ttl, ttl)
            return self._store_lease(db, new)

        return self._write_txn("renew", body)

    def release(self, lease: Lease) -> None:
        def body(db):
            cur = self._lease_row(db, lease.resource)
            if cur is not None and cur.owner == lease.owner and cur.epoch == lease.epoch:
                self._store_lease(db, Lease(lease.resource, "", cur.epoch, 0.0, 0.0))

        self._write_txn("release", body)

    def check(self, lease: Lease) -> bool:
        rows = self._read(
            "check",
            "SELECT owner, epoch, expires FROM leases WHERE resource=?",
            (lease.resource,),
        )
        if not rows:
            return False
        owner, epoch, expires = rows[0]
        return owner == lease.owner and epoch == lease.epoch and expires > self._clock()

    def transfer(self, resource, from_lease, to_owner, ttl=None) -> Lease:
        check_name("owner", to_owner)
        if from_lease.resource != resource:
            raise ValueError(f"lease is for {from_lease.resource!r}, not {resource!r}")
        ttl = from_lease.ttl if ttl is None else ttl
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0, not {ttl!r}")

        def body(db):
            cur = self._current_term(db, from_lease, "transfer")
            new = Lease(resource, to_owner, cur.epoch + 1, self._clock() + ttl, ttl)
            return self._store_lease(db, new)

        return self._write_txn("transfer", body)

    def get_lease(self, resource: str) -> Lease | None:
        rows = self._read(
            "get_lease",
            "SELECT owner, epoch, expires, ttl FROM leases WHERE resource=?",
            (resource,),
        )
        return Lease(resource, *rows[0]) if rows else None

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.path)!r}, durability={self.durability!r})"
