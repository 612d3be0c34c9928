"""Embedded checkpoint store: one SQLite file in WAL mode (stdlib ``sqlite3``).

Layout (one file, plus its ``-wal`` and ``-shm``; ``PRAGMA user_version`` = 2):

- ``kv(seq INTEGER PRIMARY KEY, ns INTEGER NOT NULL, key TEXT NOT NULL, value)`` with a
  unique index on ``(ns, key)``: one row per record, keyed by the sequence of its last write.
  A write is ``INSERT OR REPLACE``: the record's row is replaced by one with a new ``seq``.
  ``value`` is a BLOB for bytes, TEXT (JSON) for a dict, NULL for a deleted record (a
  *tombstone*, kept until ``compact``). The change feed is
  ``WHERE seq > ? ORDER BY seq`` over the same table: a *compacted* feed (the latest change of
  each key), and a write costs one row, not a row plus a log entry.
- ``namespaces(id INTEGER PRIMARY KEY, name UNIQUE)``: ``kv.ns`` is a small integer (rows and
  index entries stay short); ids are never reused, each handle caches them.
- ``meta(name PRIMARY KEY, value)``: ``seq`` (the last sequence given out: sequences are
  assigned by the writer inside its transaction, never reused even when ``compact`` drops the
  newest tombstone), ``floor`` (the feed floor), ``boot_id`` (of the lease clock).
- ``leases(resource PRIMARY KEY, owner, epoch, expires, ttl)``: never deleted (a release clears
  the owner), so an epoch never goes back.

Write path (``put_many``): the values are checked and laid out in one Python loop outside the
lock; the batch is then one ``BEGIN IMMEDIATE`` transaction made of multi-row ``INSERT OR
REPLACE`` statements of up to 256 rows each (``VALUES (?1+0,?2,?3,?4),(?1+1,?5,?6,?7),…``: the
sequence is the batch's base plus the row's position, so it is bound once per statement), one
read and one update of ``meta.seq``. One statement per 256 rows instead of one per row is what
takes SQLite past 200,000 records/s from one thread (docs/performance.md).

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

Large values (a RIB snapshot of tens of MB) are ordinary rows (SQLite overflow pages, up to
1 GB per value); reads of the feed and of ``scan`` fetch rows in pages bounded by count and by
bytes (32 MiB), so a follower never holds more than one page of big values at a time.

Lease clock: ``CLOCK_BOOTTIME`` (shared by every process on the box, does not jump with NTP,
counts suspend). Leases written in an earlier boot are treated as expired (the boot id is kept
in ``meta``).
"""

from __future__ import annotations

import errno
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

LAYOUT = 2  # PRAGMA user_version of the file layout written by this module

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS namespaces(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS kv("
    " seq INTEGER PRIMARY KEY, ns INTEGER NOT NULL, key TEXT NOT NULL, value)",
    "CREATE UNIQUE INDEX IF NOT EXISTS kv_key ON kv(ns, key)",
    "CREATE TABLE IF NOT EXISTS leases("
    " resource TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch INTEGER NOT NULL,"
    " expires REAL NOT NULL, ttl REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value) WITHOUT ROWID",
)

_DURABILITY = {"process": "NORMAL", "power": "FULL"}

_CHUNK = 256  # rows per INSERT statement (3 bound values per row + 1)
_READ_ROWS = 5000  # rows per read of the feed / of a scan ...
_READ_BYTES = 32 << 20  # ... and at most this many bytes of values (big values: fewer rows)


def _insert_sql(n: int) -> str:
    """``INSERT OR REPLACE`` of n rows; ?1 is the sequence of the first row."""
    rows = ",".join(f"(?1+{i},?{3 * i + 2},?{3 * i + 3},?{3 * i + 4})" for i in range(n))
    return f"INSERT OR REPLACE INTO kv(seq, ns, key, value) VALUES{rows}"


# the statements for a chunk of _CHUNK rows and for the powers of two below it (a remainder
# is written as a sum of those): a dozen statements, all kept in sqlite3's statement cache
_INSERT = {n: _insert_sql(n) for n in [_CHUNK] + [1 << i for i in range(_CHUNK.bit_length())]}


def _chunks(n: int) -> list[tuple[int, int]]:
    """(offset, rows) of the INSERT statements for a batch of n rows."""
    out = []
    off = 0
    while n - off >= _CHUNK:
        out.append((off, _CHUNK))
        off += _CHUNK
    rest = n - off
    bit = _CHUNK >> 1
    while rest:
        if rest >= bit:
            out.append((off, bit))
            off += bit
            rest -= bit
        bit >>= 1
    return out


def _why_not_writable(path: Path) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "read-only file system"
        st = path.stat()
    except OSError as exc:
        return exc.strerror or str(exc)
    return f"mode {st.st_mode & 0o7777:04o}, owner uid {st.st_uid}, this process runs as uid {os.geteuid()}"


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
        self._ns_ids: dict[str, int] = {}
        self._ns_names: dict[int, str] = {}
        self._check_path()
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
            # are copied back once per checkpoint, not once per 1000 pages), reads by mmap; a
            # WAL that one big value (a 50 MB snapshot) grew is cut back to 64 MiB once reset
            db.execute("PRAGMA cache_size=-65536")
            db.execute("PRAGMA wal_autocheckpoint=10000")
            db.execute("PRAGMA journal_size_limit=67108864")
            db.execute("PRAGMA mmap_size=268435456")
            db.execute("BEGIN IMMEDIATE")
            try:
                self._prepare_layout(db, clock is None)
                db.execute("COMMIT")
            except BaseException:
                self._rollback(db)
                raise
        except sqlite3.Error as exc:
            self._close_quietly()
            raise StoreUnavailable(
                f"checkpoint store {self.path}: cannot open for writing: {exc}"
            ) from exc
        except BaseException:
            self._close_quietly()
            raise

    def _check_path(self) -> None:
        """Precise errors for the usual mistakes, before SQLite's "unable to open"."""
        where = f"checkpoint store {self.path}: cannot open for writing"
        parent = self.path.parent
        try:
            if not parent.is_dir():
                what = "is not a directory" if parent.exists() else "does not exist"
                raise StoreUnavailable(f"checkpoint store {self.path}: directory {parent} {what}")
            if self.path.is_dir():
                raise StoreUnavailable(f"checkpoint store {self.path}: is a directory")
            existed = self.path.exists()
        except OSError as exc:  # a directory on the way that this user cannot search
            raise StoreUnavailable(f"{where}: {exc.strerror} ({exc.filename})") from exc
        try:  # what SQLite will do, to get the errno it would hide
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                if existed:
                    raise StoreUnavailable(
                        f"{where}: the file is not writable ({exc.strerror};"
                        f" {_why_not_writable(self.path)})"
                    ) from exc
                raise StoreUnavailable(
                    f"{where}: directory {parent} is not writable ({exc.strerror};"
                    f" {_why_not_writable(parent)})"
                ) from exc
            raise StoreUnavailable(f"{where}: cannot create the file ({exc.strerror})") from exc
        # SQLite also creates the -wal and -shm files next to it
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StoreUnavailable(
                f"{where}: directory {parent} is not writable ({_why_not_writable(parent)})"
            )

    def _prepare_layout(self, db: sqlite3.Connection, boot_clock: bool) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version > LAYOUT:
            raise StoreUnavailable(
                f"checkpoint store {self.path}: file layout {version} is newer than this"
                f" software's ({LAYOUT}); open it with a newer FCR"
            )
        old_records = version < LAYOUT and "records" in tables
        for stmt in _SCHEMA:
            db.execute(stmt)
        if old_records:
            self._migrate_v1(db)
        if db.execute("SELECT 1 FROM meta WHERE name='seq'").fetchone() is None:
            db.execute("INSERT INTO meta VALUES('seq', 0)")
        if version != LAYOUT:
            db.execute(f"PRAGMA user_version={LAYOUT}")
        boot = _boot_id()
        row = db.execute("SELECT value FROM meta WHERE name='boot_id'").fetchone()
        if boot_clock and (row is None or row[0] != boot):
            # leases of an earlier boot: their CLOCK_BOOTTIME deadlines mean nothing now
            db.execute("UPDATE leases SET expires=0")
            db.execute("INSERT OR REPLACE INTO meta VALUES('boot_id', ?)", (boot,))

    @staticmethod
    def _migrate_v1(db: sqlite3.Connection) -> None:
        """Layout 1 (``records(seq AUTOINCREMENT, ns TEXT, key, value)``) to layout 2, in the
        opening transaction: same sequences, same tombstones, same feed floor."""
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='records'").fetchone()
        last = row[0] if row else 0
        db.execute("INSERT OR IGNORE INTO namespaces(name) SELECT DISTINCT ns FROM records")
        db.execute(
            "INSERT INTO kv(seq, ns, key, value) SELECT r.seq, n.id, r.key, r.value"
            " FROM records r JOIN namespaces n ON n.name = r.ns"
        )
        db.execute("INSERT OR REPLACE INTO meta VALUES('seq', ?)", (last,))
        # dropped, not kept: an engine of the old layout still running on this file fails
        # loudly ("no such table") instead of writing rows the new layout cannot read
        db.execute("DROP TABLE records")

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

    def _read_page(self, what: str, sql: str, args: tuple, limit: int, vcol: int) -> tuple[list[tuple], bool]:
        """Rows of a paged read (LIMIT in ``sql``), stopping early once the values in column
        ``vcol`` add up to _READ_BYTES (a page of 50 MB values is one row, not 5000); and
        whether more rows may follow (the page is full or was cut short)."""
        with self._lock:
            try:
                cur = self._conn().execute(sql, args)
                rows = []
                size = 0
                for row in cur:
                    rows.append(row)
                    v = row[vcol]
                    if v is not None:
                        size += len(v)
                        if size >= _READ_BYTES:
                            cur.close()
                            return rows, True
                cur.close()
                return rows, len(rows) == limit
            except sqlite3.Error as exc:
                raise self._unavailable(what, exc) from exc

    def now(self) -> float:
        """The lease clock (seconds)."""
        return self._clock()

    # -- namespaces ------------------------------------------------------------------------

    def _ns_create(self, ns: str) -> int:
        """The id of namespace ``ns``, created if new (its own small transaction: a namespace
        row without records is harmless, ids are never reused)."""
        check_name("ns", ns)
        nid = self._ns_lookup(ns)
        if nid is None:
            def body(db):
                db.execute("INSERT OR IGNORE INTO namespaces(name) VALUES(?)", (ns,))
                return db.execute("SELECT id FROM namespaces WHERE name=?", (ns,)).fetchone()[0]

            nid = self._write_txn("put_many", body)
            self._ns_ids[ns] = nid
            self._ns_names[nid] = ns
        return nid

    def _ns_lookup(self, ns: str) -> int | None:
        nid = self._ns_ids.get(ns)
        if nid is None and type(ns) is str:
            rows = self._read("namespace", "SELECT id FROM namespaces WHERE name=?", (ns,))
            if rows:
                nid = rows[0][0]
                self._ns_ids[ns] = nid
                self._ns_names[nid] = ns
        return nid

    def _ns_name(self, nid: int) -> str:
        name = self._ns_names.get(nid)
        if name is None:
            for i, n in self._read("changes", "SELECT id, name FROM namespaces", ()):
                self._ns_names[i] = n
                self._ns_ids[n] = i
            name = self._ns_names[nid]
        return name

    # -- records ---------------------------------------------------------------------------

    def put_many(self, records, *, deletes=(), fence=None) -> int:
        # the hot path of checkpointing: one Python loop lays the batch out as the bound
        # values of the INSERT statements (namespace id, key, value per row), outside the lock
        flat: list = []
        push = flat.extend
        ids = self._ns_ids
        for ns, key, value in records:
            if type(value) is not bytes:
                value = encode_value(value)
            if type(key) is not str or not key or "\x00" in key:
                check_name("key", key)
            nid = ids.get(ns)
            if nid is None:
                nid = self._ns_create(ns)
            push((nid, key, value))
        n = len(flat) // 3
        dels = []
        for ns, key in deletes:
            check_name("ns", ns)
            check_name("key", key)
            dels.append((ns, key))
        dels = [(nid, key) for ns, key in dels if (nid := self._ns_lookup(ns)) is not None]
        chunks = _chunks(n)

        def body(db: sqlite3.Connection) -> int:
            if fence is not None:
                self._check_fence(db, fence)
            last = db.execute("SELECT value FROM meta WHERE name='seq'").fetchone()[0]
            base = last + 1
            for off, rows in chunks:
                args = flat[3 * off:3 * (off + rows)]
                args.insert(0, base + off)
                db.execute(_INSERT[rows], args)
            last += n
            for nid, key in dels:
                cur = db.execute(
                    "INSERT OR REPLACE INTO kv(seq, ns, key, value)"
                    " SELECT ?, ns, key, NULL FROM kv WHERE ns=? AND key=? AND value IS NOT NULL",
                    (last + 1, nid, key),
                )
                if cur.rowcount > 0:
                    last += 1
            if last >= base:
                db.execute("UPDATE meta SET value=? WHERE name='seq'", (last,))
            return last

        if not n and not dels and fence is None:
            return self.last_seq()
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
        nid = self._ns_lookup(ns)
        if nid is None:
            return None
        rows = self._read(
            "get",
            "SELECT value, seq FROM kv WHERE ns=? AND key=? AND value IS NOT NULL",
            (nid, key),
        )
        if not rows:
            return None
        value, seq = rows[0]
        return Record(ns, key, decode_value(value), seq)

    def scan(self, ns: str, prefix: str = "") -> Iterator[Record]:
        nid = self._ns_lookup(ns)
        if nid is None:
            return
        sql = (
            "SELECT key, value, seq FROM kv WHERE ns=? AND key {} ? AND value IS NOT NULL"
            f" ORDER BY key LIMIT {_READ_ROWS}"
        )
        after = prefix
        op = ">="
        while True:
            rows, more = self._read_page("scan", sql.format(op), (nid, after), _READ_ROWS, 1)
            for key, value, seq in rows:
                if not key.startswith(prefix):
                    return
                yield Record(ns, key, decode_value(value), seq)
            if not more:
                return
            after = rows[-1][0]
            op = ">"

    def last_seq(self) -> int:
        return self._read("last_seq", "SELECT value FROM meta WHERE name='seq'", ())[0][0]

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
        names = self._ns_names
        while limit is None or given < limit:
            n = _READ_ROWS if limit is None else min(_READ_ROWS, limit - given)
            rows, more = self._read_page(
                "changes",
                "SELECT seq, ns, key, value FROM kv WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, n),
                n,
                3,
            )
            for s, nid, key, value in rows:
                ns = names.get(nid) or self._ns_name(nid)
                yield Change(s, ns, key, decode_value(value))
            given += len(rows)
            if rows:
                seq = rows[-1][0]
                idle_since = time.monotonic()
                if more:
                    continue
            if not follow:
                return
            if timeout is not None and time.monotonic() - idle_since >= timeout:
                return
            time.sleep(poll_interval)

    def compact(self, upto_seq: int) -> int:
        def body(db):
            db.execute("DELETE FROM kv WHERE value IS NULL AND seq <= ?", (upto_seq,))
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
