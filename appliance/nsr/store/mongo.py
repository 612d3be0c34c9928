"""MongoDB checkpoint store (pymongo), for several boxes sharing a replica set.

Collections (names prefixed, default ``nsr_``):

- ``log``: the change feed, one document per batch (per chunk of ``chunk_records`` records):
  ``{_id: first_seq, last: last_seq, ops: [[ns, key, value], ...], applied: bool}``. A batch
  of up to ``chunk_records`` records is one document, so it is atomic for the feed (MongoDB
  writes one document atomically); larger batches are atomic per chunk.
- ``records``: the current state, ``{_id: ns + "\\0" + key, ns, key, seq, v}``, written after
  the log with a guard ``seq < new seq`` so that replays and late writers never overwrite a
  newer value; ``v: null`` is a tombstone (kept until ``compact``).
- ``meta``: the sequence counter (``$inc`` reserves a block per batch) and the feed floor.
- ``blobs``: values longer than ``blob_bytes`` (4 MiB; a document holds at most 16 MB), in
  parts, written before the log entry that refers to them; log entries are also cut at
  ~8 MB. ``compact`` drops the parts no current record refers to.
- ``leases``: ``{_id: resource, owner, epoch, expires, ttl}``; every change is a
  ``find_one_and_update`` whose filter holds the epoch (and owner, and for a takeover the
  expiry) read just before: a compare-and-set.

Writes use write concern ``majority`` (journaled): when ``put_many`` returns, the batch is on
the journal of a majority of the replica set and survives the loss of the primary. Every call
is bounded: ``server_selection_timeout`` (no reachable primary) and ``op_timeout`` (a server
that stops answering, a write no majority confirms) end in ``StoreUnavailable``; options given
in the URI (``serverSelectionTimeoutMS=500``, ``w``, ...) take precedence over these defaults. Reads use
read concern ``majority``; lease reads (``check``, ``get_lease``) use ``linearizable`` (on a
real replica set; mongomock ignores concerns).

Why a log collection instead of a change stream: a change stream needs a replica set, and
mongomock has none; tailing a sequence-indexed collection works on both and lets a follower
resume from any sequence (a change stream resume token expires with the oplog). Sequence
numbers are reserved before the log insert, so two writers can commit out of order: the
feed waits at a gap (a reserved sequence not yet visible) up to ``hole_timeout`` seconds,
then skips it (the writer died after reserving).

A crash between the log insert and the records update leaves the log ahead of the records;
a store that opens replays log documents not marked ``applied`` (idempotent by the seq guard).

Lease clock: wall-clock seconds (``time.time``) of the caller; boxes must run NTP and the
lease TTL must be much larger than their skew (seconds vs milliseconds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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

try:
    import pymongo
    from pymongo import ReturnDocument
    from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
    from pymongo.read_concern import ReadConcern
    from pymongo.write_concern import WriteConcern
except ImportError:  # pragma: no cover - pymongo is a dependency
    pymongo = None


_LOG_DOC_BYTES = 8 << 20  # a log document holds at most this many bytes of records
_BLOB_PARTS = 1 << 20  # parts of one value in ``blobs``: _id = seq * _BLOB_PARTS + part


class _BlobGone(Exception):
    """The parts of an out-of-line value were collected (overwritten, then compacted)."""


class MongoStore(CheckpointStore):
    """``MongoStore(uri)`` or ``MongoStore(client=...)`` (a pymongo or mongomock client)."""

    feed_compacted = False

    def __init__(
        self,
        uri: str | None = None,
        *,
        client: Any = None,
        database: str | None = None,
        prefix: str = "nsr_",
        server_selection_timeout: float = 5.0,
        op_timeout: float = 10.0,
        hole_timeout: float = 2.0,
        chunk_records: int = 20_000,
        blob_bytes: int = 4 << 20,
        clock: Callable[[], float] = time.time,
    ):
        if pymongo is None:
            raise StoreUnavailable("MongoDB checkpoint store: pymongo is not installed")
        self._clock = clock
        self.hole_timeout = hole_timeout
        self.chunk_records = chunk_records
        self.blob_bytes = blob_bytes
        self._holes: dict[int, float] = {}
        self._where = "MongoDB checkpoint store"
        try:
            if client is None:
                if not uri:
                    raise ValueError("MongoStore needs a uri or a client")
                self._where = f"MongoDB checkpoint store {_redact(uri)}"
                # options given in the URI win over these defaults (pymongo lets keyword
                # arguments override the URI: pass only what the URI does not say)
                given = _uri_options(uri)
                defaults = {
                    "serverSelectionTimeoutMS": int(server_selection_timeout * 1000),
                    "connectTimeoutMS": int(server_selection_timeout * 1000),
                    # a server that stops answering, a write that no majority confirms:
                    # StoreUnavailable after op_timeout instead of a call that never returns
                    "socketTimeoutMS": int(op_timeout * 1000),
                    "wTimeoutMS": int(op_timeout * 1000),
                    "w": "majority",
                    "journal": True,
                    "readConcernLevel": "majority",
                    "retryWrites": True,
                }
                client = pymongo.MongoClient(
                    uri, **{k: v for k, v in defaults.items() if k.lower() not in given}
                )
                self._owns_client = True
            else:
                self._owns_client = False
            self.client = client
            self._mock = type(client).__module__.startswith("mongomock")
            if database is None:
                try:
                    database = client.get_default_database().name
                except Exception:
                    database = "fcr"
            if self._mock:
                wc = WriteConcern("majority")
            else:
                wopts = client.write_concern.document
                wc = WriteConcern(wopts.get("w", "majority"), wtimeout=wopts.get("wtimeout"),
                                  j=wopts.get("j", True))
            db = client.get_database(
                database, write_concern=wc, read_concern=ReadConcern("majority")
            )
            self.db = db
            self._records = db[prefix + "records"]
            self._log = db[prefix + "log"]
            self._meta = db[prefix + "meta"]
            self._leases = db[prefix + "leases"]
            self._leases_lin = self._leases.with_options(read_concern=ReadConcern("linearizable"))
            client.admin.command("ping")
            self._records.create_index([("ns", 1), ("key", 1)])
            self._records.create_index([("seq", 1)])
            self._log.create_index([("last", 1)])
            self._log.create_index([("applied", 1)], sparse=True)
            self._blobs = db[prefix + "blobs"]
            self._replay_unapplied()
        except PyMongoError as exc:
            self._close_client()
            raise self._fail("open", exc) from exc

    # -- helpers ---------------------------------------------------------------------------

    def _close_client(self) -> None:
        if getattr(self, "_owns_client", False):
            try:
                self.client.close()
            except Exception:
                pass

    def _fail(self, what: str, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"{self._where}: {what} failed: {_describe(exc)}")

    def now(self) -> float:
        return self._clock()

    @staticmethod
    def _rid(ns: str, key: str) -> str:
        return f"{ns}\x00{key}"

    def _apply_ops(self, first: int, ops: list) -> None:
        """Write ops (the seq of ops[i] is first + i) to records, newest wins."""
        updates = []
        for i, (ns, key, v) in enumerate(ops):
            seq = first + i
            updates.append(
                ({"_id": self._rid(ns, key), "seq": {"$lt": seq}},
                 {"$set": {"ns": ns, "key": key, "seq": seq, "v": v}})
            )
        if not self._mock:
            try:
                self._records.bulk_write(
                    [pymongo.UpdateOne(f, u, upsert=True) for f, u in updates], ordered=False
                )
            except BulkWriteError as exc:
                # 11000: a newer version of the record is there already; anything else is real
                others = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
                if others or exc.details.get("writeConcernErrors"):
                    raise
            return
        for f, u in updates:  # mongomock's bulk_write does not take pymongo 4.9+ operations
            try:
                self._records.update_one(f, u, upsert=True)
            except DuplicateKeyError:
                pass

    def _replay_unapplied(self) -> None:
        for doc in self._log.find({"applied": False}).sort("_id", 1):
            self._apply_ops(doc["_id"], doc["ops"])
            self._log.update_one({"_id": doc["_id"]}, {"$set": {"applied": True}})

    # -- large values ----------------------------------------------------------------------
    #
    # A value longer than ``blob_bytes`` (a RIB snapshot of tens of MB; a MongoDB document
    # holds at most 16 MB) is written to ``blobs`` in parts of ``blob_bytes``, ``_id`` =
    # seq * 2**20 + part, before the log entry that refers to it; the log entry and the record
    # hold ``{"blob": seq, "parts": n, "size": bytes, "json": bool}`` instead of the value
    # (stored values are otherwise bytes or str, never a document, so the two cannot be
    # confused). ``compact`` drops the parts that no current record refers to.

    def _store_blobs(self, first: int, ops: list) -> None:
        docs = []
        for i, op in enumerate(ops):
            v = op[2]
            if v is None or len(v) <= self.blob_bytes:
                continue
            seq = first + i
            is_json = isinstance(v, str)
            data = v.encode() if is_json else v
            step = self.blob_bytes
            parts = [data[j:j + step] for j in range(0, len(data), step)]
            if len(parts) >= _BLOB_PARTS:
                raise ValueError(f"record value of {len(data)} bytes is too large")
            for j, part in enumerate(parts):
                docs.append({"_id": seq * _BLOB_PARTS + j, "d": part})
                if len(docs) >= 8:
                    self._blobs.insert_many(docs, ordered=True)
                    docs = []
            op[2] = {"blob": seq, "parts": len(parts), "size": len(data), "json": is_json}
        if docs:
            self._blobs.insert_many(docs, ordered=True)

    def _decode(self, v: Any) -> Any:
        if isinstance(v, dict):
            seq, n = v["blob"], v["parts"]
            docs = list(self._blobs.find(
                {"_id": {"$gte": seq * _BLOB_PARTS, "$lt": seq * _BLOB_PARTS + n}}
            ).sort("_id", 1))
            if len(docs) != n:
                raise _BlobGone(seq)
            data = b"".join(bytes(d["d"]) for d in docs)
            return json.loads(data) if v["json"] else data
        return decode_value(v)

    def _collect_blobs(self, upto_seq: int) -> None:
        live = {d["v"]["blob"] for d in self._records.find(
            {"v.blob": {"$lte": upto_seq}}, {"v": 1})}
        dead = sorted({d["_id"] // _BLOB_PARTS for d in self._blobs.find(
            {"_id": {"$lt": (upto_seq + 1) * _BLOB_PARTS}}, {"_id": 1})} - live)
        for seq in dead:
            self._blobs.delete_many(
                {"_id": {"$gte": seq * _BLOB_PARTS, "$lt": (seq + 1) * _BLOB_PARTS}})

    # -- records ---------------------------------------------------------------------------

    def put_many(self, records, *, deletes=(), fence=None) -> int:
        ops: list[list] = []
        for ns, key, value in records:
            check_name("ns", ns)
            check_name("key", key)
            ops.append([ns, key, encode_value(value)])
        for ns, key in deletes:
            check_name("ns", ns)
            check_name("key", key)
            ops.append([ns, key, None])
        try:
            if fence is not None:
                self._check_fence(fence)
            if not ops:
                return self.last_seq()
            n = len(ops)
            doc = self._meta.find_one_and_update(
                {"_id": "seq"}, {"$inc": {"value": n}}, upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            last = doc["value"]
            first = last - n + 1
            self._store_blobs(first, ops)
            chunks = []
            start = 0
            size = 0
            for i, op in enumerate(ops):
                v = op[2]
                size += len(op[0]) + len(op[1]) + (len(v) if type(v) in (bytes, str) else 64) + 16
                if i + 1 - start >= self.chunk_records or size >= _LOG_DOC_BYTES or i + 1 == n:
                    chunks.append({"_id": first + start, "last": first + i,
                                   "ops": ops[start:i + 1], "applied": False})
                    start = i + 1
                    size = 0
            self._log.insert_many(chunks, ordered=True)
            for c in chunks:
                self._apply_ops(c["_id"], c["ops"])
            self._log.update_many({"_id": {"$in": [c["_id"] for c in chunks]}},
                                  {"$set": {"applied": True}})
            return last
        except PyMongoError as exc:
            raise self._fail("put_many", exc) from exc

    def _check_fence(self, fence: Lease) -> None:
        cur = self._lease_doc(fence.resource, linearizable=True)
        if (cur is None or cur.owner != fence.owner or cur.epoch != fence.epoch
                or cur.expires <= self._clock()):
            raise LeaseConflict(
                f"fenced write refused: lease {fence.resource!r} epoch {fence.epoch} of"
                f" {fence.owner!r} is not current (store has {cur})", cur)

    def get(self, ns, key):
        try:
            for _ in range(3):
                doc = self._records.find_one({"_id": self._rid(ns, key), "v": {"$ne": None}})
                if doc is None:
                    return None
                try:
                    return Record(ns, key, self._decode(doc["v"]), doc["seq"])
                except _BlobGone:
                    continue  # overwritten and compacted between the two reads: read again
            raise StoreUnavailable(f"{self._where}: get {ns!r} {key!r}: value keeps vanishing")
        except PyMongoError as exc:
            raise self._fail("get", exc) from exc

    def scan(self, ns, prefix=""):
        try:
            cursor = self._records.find(
                {"ns": ns, "key": {"$gte": prefix}, "v": {"$ne": None}}
            ).sort("key", 1)
            for doc in cursor:
                if not doc["key"].startswith(prefix):
                    return
                try:
                    value = self._decode(doc["v"])
                except _BlobGone:
                    rec = self.get(ns, doc["key"])  # overwritten meanwhile: the newer value
                    if rec is None:
                        continue
                    value = rec.value
                yield Record(ns, doc["key"], value, doc["seq"])
        except PyMongoError as exc:
            raise self._fail("scan", exc) from exc

    def last_seq(self) -> int:
        try:
            docs = list(self._log.find({}, {"last": 1}).sort("last", -1).limit(1))
            if docs:
                return docs[0]["last"]
            doc = self._meta.find_one({"_id": "floor"})
            return doc["value"] if doc else 0
        except PyMongoError as exc:
            raise self._fail("last_seq", exc) from exc

    # -- change feed -----------------------------------------------------------------------

    def _floor(self) -> int:
        doc = self._meta.find_one({"_id": "floor"})
        return doc["value"] if doc else 0

    def changes(self, since_seq=0, *, follow=False, poll_interval=0.005, limit=None, timeout=None):
        try:
            floor = self._floor()
        except PyMongoError as exc:
            raise self._fail("changes", exc) from exc
        if since_seq < floor:
            raise FeedTruncated(
                f"{self._where}: changes since {since_seq} were compacted (floor {floor});"
                " resynchronise from a scan", floor)
        return self._changes(since_seq, follow, poll_interval, limit, timeout)

    def _changes(self, pos, follow, poll_interval, limit, timeout) -> Iterator[Change]:
        given = 0
        idle_since = time.monotonic()
        while limit is None or given < limit:
            progressed = False
            try:
                docs = list(self._log.find({"last": {"$gt": pos}}).sort("_id", 1).limit(64))
            except PyMongoError as exc:
                raise self._fail("changes", exc) from exc
            for doc in docs:
                first = doc["_id"]
                if first > pos + 1:  # a gap: a writer reserved pos+1.. and has not inserted yet
                    seen = self._holes.setdefault(pos + 1, time.monotonic())
                    if time.monotonic() - seen < self.hole_timeout:
                        break
                    self._holes.pop(pos + 1, None)
                for i, (ns, key, v) in enumerate(doc["ops"]):
                    seq = first + i
                    if seq <= pos:
                        continue
                    try:
                        value = self._decode(v)
                    except _BlobGone:
                        floor = self._floor()
                        raise FeedTruncated(
                            f"{self._where}: the value of change {seq} was compacted"
                            f" (floor {floor}); resynchronise from a scan", floor) from None
                    yield Change(seq, ns, key, value)
                    pos = seq
                    given += 1
                    if limit is not None and given >= limit:
                        return
                progressed = True
            if progressed:
                idle_since = time.monotonic()
                continue
            if not follow:
                return
            if timeout is not None and time.monotonic() - idle_since >= timeout:
                return
            time.sleep(poll_interval)

    def compact(self, upto_seq: int) -> int:
        try:
            self._log.delete_many({"last": {"$lte": upto_seq}, "applied": True})
            self._records.delete_many({"v": None, "seq": {"$lte": upto_seq}})
            self._collect_blobs(upto_seq)
            doc = self._meta.find_one_and_update(
                {"_id": "floor"}, {"$max": {"value": upto_seq}}, upsert=True,
                return_document=ReturnDocument.AFTER)
            return doc["value"]
        except PyMongoError as exc:
            raise self._fail("compact", exc) from exc

    # -- leases ----------------------------------------------------------------------------

    def _lease_doc(self, resource: str, linearizable: bool = False) -> Lease | None:
        coll = self._leases_lin if linearizable and not self._mock else self._leases
        doc = coll.find_one({"_id": resource})
        return None if doc is None else _lease(doc)

    def _cas(self, filt: dict, new: Lease) -> Lease | None:
        doc = self._leases.find_one_and_update(
            filt,
            {"$set": {"owner": new.owner, "epoch": new.epoch, "expires": new.expires,
                      "ttl": new.ttl}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _lease(doc)

    def acquire_lease(self, resource, owner, ttl):
        check_name("resource", resource)
        check_name("owner", owner)
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0, not {ttl!r}")
        try:
            for _ in range(16):
                now = self._clock()
                cur = self._lease_doc(resource, linearizable=True)
                if cur is None:
                    try:
                        self._leases.insert_one({"_id": resource, "owner": owner, "epoch": 1,
                                                 "expires": now + ttl, "ttl": ttl})
                        return Lease(resource, owner, 1, now + ttl, ttl)
                    except DuplicateKeyError:
                        continue
                if cur.owner == owner:
                    filt = {"_id": resource, "owner": owner, "epoch": cur.epoch}
                    epoch = cur.epoch
                elif cur.owner == "" or cur.expires <= now:
                    filt = {"_id": resource, "owner": cur.owner, "epoch": cur.epoch,
                            "expires": cur.expires}
                    epoch = cur.epoch + 1
                else:
                    raise LeaseConflict(
                        f"lease {resource!r} is held by {cur.owner!r} (epoch {cur.epoch},"
                        f" {cur.expires - now:.3f} s left)", cur)
                got = self._cas(filt, Lease(resource, owner, epoch, now + ttl, ttl))
                if got is not None:
                    return got
            cur = self._lease_doc(resource)
            raise LeaseConflict(f"lease {resource!r}: compare-and-set kept losing", cur)
        except PyMongoError as exc:
            raise self._fail("acquire_lease", exc) from exc

    def _stale(self, what: str, lease: Lease) -> LeaseConflict:
        cur = self._lease_doc(lease.resource)
        return LeaseConflict(
            f"{what} refused: lease {lease.resource!r} epoch {lease.epoch} of {lease.owner!r}"
            f" is stale (store has {cur})", cur)

    def renew(self, lease, ttl=None):
        ttl = lease.ttl if ttl is None else ttl
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0, not {ttl!r}")
        try:
            new = Lease(lease.resource, lease.owner, lease.epoch, self._clock() + ttl, ttl)
            got = self._cas({"_id": lease.resource, "owner": lease.owner, "epoch": lease.epoch},
                            new)
            if got is None:
                raise self._stale("renew", lease)
            return got
        except PyMongoError as exc:
            raise self._fail("renew", exc) from exc

    def release(self, lease):
        try:
            self._leases.update_one(
                {"_id": lease.resource, "owner": lease.owner, "epoch": lease.epoch},
                {"$set": {"owner": "", "expires": 0.0, "ttl": 0.0}})
        except PyMongoError as exc:
            raise self._fail("release", exc) from exc

    def check(self, lease):
        try:
            cur = self._lease_doc(lease.resource, linearizable=True)
        except PyMongoError as exc:
            raise self._fail("check", exc) from exc
        return (cur is not None and cur.owner == lease.owner and cur.epoch == lease.epoch
                and cur.expires > self._clock())

    def transfer(self, resource, from_lease, to_owner, ttl=None):
        check_name("owner", to_owner)
        if from_lease.resource != resource:
            raise ValueError(f"lease is for {from_lease.resource!r}, not {resource!r}")
        ttl = from_lease.ttl if ttl is None else ttl
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0, not {ttl!r}")
        try:
            new = Lease(resource, to_owner, from_lease.epoch + 1, self._clock() + ttl, ttl)
            got = self._cas({"_id": resource, "owner": from_lease.owner,
                             "epoch": from_lease.epoch}, new)
            if got is None:
                raise self._stale("transfer", from_lease)
            return got
        except PyMongoError as exc:
            raise self._fail("transfer", exc) from exc

    def get_lease(self, resource):
        try:
            return self._lease_doc(resource, linearizable=True)
        except PyMongoError as exc:
            raise self._fail("get_lease", exc) from exc

    def close(self) -> None:
        self._close_client()

    def __repr__(self) -> str:
        return f"MongoStore({self._where!r}, db={self.db.name!r})"


def _lease(doc: dict) -> Lease:
    return Lease(doc["_id"], doc["owner"], doc["epoch"], doc["expires"], doc.get("ttl", 0.0))


def _uri_options(uri: str) -> set[str]:
    """The option names (lower case) given in a MongoDB URI's query string."""
    query = urlsplit(uri).query
    return {k.lower() for k, _ in parse_qsl(query, keep_blank_values=True)}


def _describe(exc: Exception) -> str:
    """pymongo's error without the topology dump: what failed, and in how long."""
    if pymongo is not None and isinstance(exc, pymongo.errors.ServerSelectionTimeoutError):
        text = str(exc)
        cause, _, rest = text.partition(", Timeout: ")
        cause = cause.split(" (configured timeouts:")[0]
        timeout = rest.split(",", 1)[0]
        return f"unreachable: no server answered within {timeout or '?'} ({cause})"
    if pymongo is not None and isinstance(exc, pymongo.errors.WTimeoutError):
        return f"not confirmed by a majority of the replica set in time: {exc}"
    if pymongo is not None and isinstance(exc, pymongo.errors.NetworkTimeout):
        return f"no answer in time: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _redact(uri: str) -> str:
    """The URI without its password, for messages."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return uri
