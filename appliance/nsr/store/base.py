"""The checkpoint store interface: records, change feed, ownership leases.

A store holds *records*: ``(ns, key) -> value`` where ``ns`` is a namespace such as
``"bgp/peer"`` or ``"bgp/adj-in/192.0.2.1"``, ``key`` a string, and ``value`` either
``bytes`` or a JSON-able ``dict`` (it comes back as the same type). Every write and every
delete gets a *sequence number* from one store-wide counter that only grows; a record carries
the sequence of its last write. A standby follows the writer with ``changes(since_seq)``.

Leases decide who owns a resource (a BGP session, DESIGN.md invariant 7): one owner at a
time, compare-and-set in the store, and an *epoch* per resource that grows by one on every
change of owner. The epoch is the fencing token: an owner that was paused and wakes up calls
``check(lease)``; a newer epoch in the store means someone else owns the session and the old
owner must stay silent (close its sockets in repair mode, send nothing).

Errors: every backend failure is raised as ``StoreUnavailable`` (with what was tried and
why); a lost compare-and-set is ``LeaseConflict``.
"""

from __future__ import annotations

import abc
import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Value = bytes | dict[str, Any]


class StoreError(Exception):
    """Base of the store's errors."""


class StoreUnavailable(StoreError):
    """The store cannot be reached, opened or written. A switchover must be refused with it."""


class LeaseConflict(StoreError):
    """A lease compare-and-set lost: another owner holds it, or the caller's epoch is stale.

    ``current`` is the lease as the store has it (``None`` when there is none)."""

    def __init__(self, message: str, current: Lease | None = None):
        super().__init__(message)
        self.current = current


class FeedTruncated(StoreError):
    """``changes(since_seq)`` asked for changes older than the store still keeps
    (tombstones or log entries were compacted). The follower must resynchronise from a
    full ``scan`` taken at ``last_seq()``; ``floor`` is the oldest ``since_seq`` served."""

    def __init__(self, message: str, floor: int):
        super().__init__(message)
        self.floor = floor


@dataclass(frozen=True, slots=True)
class Record:
    ns: str
    key: str
    value: Value
    seq: int


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed. ``value is None`` means the record was deleted."""

    seq: int
    ns: str
    key: str
    value: Value | None

    @property
    def deleted(self) -> bool:
        return self.value is None


@dataclass(frozen=True, slots=True)
class Lease:
    """Ownership of ``resource`` by ``owner`` in term ``epoch`` until ``expires``
    (seconds on the store's lease clock, see the backend), for ``ttl`` seconds per renewal."""

    resource: str
    owner: str
    epoch: int
    expires: float
    ttl: float = field(default=0.0, compare=False)


def check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string, not {name!r}")
    if "\x00" in name:
        raise ValueError(f"{what} must not contain NUL: {name!r}")


def encode_value(value: Value) -> bytes | str:
    """bytes stay bytes; a dict becomes compact JSON text (str)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    raise TypeError(f"record value must be bytes or a dict, not {type(value).__name__}")


def decode_value(raw: bytes | str | None) -> Value | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return json.loads(raw)
    return bytes(raw)


class CheckpointStore(abc.ABC):
    """One interface, several backends (``EmbeddedStore``, ``MongoStore``).

    Thread safety: one instance per thread (or a lock around it). Processes share a store by
    opening it each (same path, same MongoDB URI). Calls block; the routing engine calls them
    from a checkpoint thread, never from its event loop (DESIGN.md invariant 4).
    """

    #: True when the feed delivers only the latest change of each key (a key written twice
    #: between two reads shows once, at its latest sequence); False when it delivers every
    #: write. Either way: sequences strictly increase and replaying the feed from 0 (or from a
    #: snapshot's sequence) reproduces the store's contents.
    feed_compacted: bool = False

    # -- records ---------------------------------------------------------------------------

    @abc.abstractmethod
    def put_many(
        self,
        records: Iterable[tuple[str, str, Value]],
        *,
        deletes: Iterable[tuple[str, str]] = (),
        fence: Lease | None = None,
    ) -> int:
        """Write ``(ns, key, value)`` records and delete ``(ns, key)`` pairs as one batch.

        Returns the store's sequence after the batch (the last sequence it used; unchanged
        when the batch is empty). Durability when it returns: see the backend. With
        ``fence``, the batch is written only while that lease is current (same owner and
        epoch, not expired), else ``LeaseConflict`` and nothing is written."""

    def put(self, ns: str, key: str, value: Value, *, fence: Lease | None = None) -> int:
        return self.put_many([(ns, key, value)], fence=fence)

    def delete(self, ns: str, key: str, *, fence: Lease | None = None) -> int:
        return self.put_many((), deletes=[(ns, key)], fence=fence)

    @abc.abstractmethod
    def get(self, ns: str, key: str) -> Record | None:
        """The record, or None when it does not exist (or was deleted)."""

    @abc.abstractmethod
    def scan(self, ns: str, prefix: str = "") -> Iterator[Record]:
        """Records of namespace ``ns`` whose key starts with ``prefix``, in key order."""

    @abc.abstractmethod
    def last_seq(self) -> int:
        """The highest sequence number committed so far (0 for an empty store)."""

    # -- change feed -----------------------------------------------------------------------

    @abc.abstractmethod
    def changes(
        self,
        since_seq: int = 0,
        *,
        follow: bool = False,
        poll_interval: float = 0.005,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[Change]:
        """Changes with ``seq > since_seq`` in increasing ``seq`` order.

        Without ``follow`` it stops at the current end; with ``follow`` it waits for more
        (polling every ``poll_interval`` s) until ``timeout`` s pass without a new change
        (None: forever) or the consumer stops iterating. Resume after a restart by passing
        the last ``seq`` applied. Raises ``FeedTruncated`` when ``since_seq`` is older than
        what the store keeps."""

    async def achanges(
        self, since_seq: int = 0, *, poll_interval: float = 0.005, batch: int = 10_000
    ) -> AsyncIterator[Change]:
        """Async form of ``changes(follow=True)``: each read runs in a worker thread so the
        event loop never waits on the store."""
        seq = since_seq
        while True:
            chunk = await asyncio.to_thread(lambda s=seq: list(self.changes(s, limit=batch)))
            if not chunk:
                await asyncio.sleep(poll_interval)
                continue
            for change in chunk:
                seq = change.seq
                yield change

    @abc.abstractmethod
    def compact(self, upto_seq: int) -> int:
        """Forget feed history at or below ``upto_seq`` (tombstones of deleted records, log
        entries); followers older than it get ``FeedTruncated``. Returns the new floor."""

    # -- leases ----------------------------------------------------------------------------

    @abc.abstractmethod
    def acquire_lease(self, resource: str, owner: str, ttl: float) -> Lease:
        """Take ``resource`` for ``owner`` for ``ttl`` seconds.

        Succeeds when nobody holds it, the holder's lease expired, or it was released: the
        epoch then becomes the previous epoch + 1. When ``owner`` already holds it, this is
        a renewal (same epoch). Otherwise ``LeaseConflict`` carrying the current lease."""

    @abc.abstractmethod
    def renew(self, lease: Lease, ttl: float | None = None) -> Lease:
        """Extend the lease (same epoch). ``LeaseConflict`` when the store's epoch or owner
        differs (someone took over: stay silent). A lease that expired but that nobody took
        is renewed: the epoch, not the clock, is what fences a stale owner."""

    @abc.abstractmethod
    def release(self, lease: Lease) -> None:
        """Give the resource up (only if ``lease`` is still the current term; a stale release
        is ignored, it must not free someone else's lease). The epoch is kept, so the next
        owner's epoch is higher."""

    @abc.abstractmethod
    def check(self, lease: Lease) -> bool:
        """True when ``lease`` is the current term (same owner and epoch) and not expired.
        An owner calls it before it acts; False means: stay silent."""

    @abc.abstractmethod
    def transfer(
        self, resource: str, from_lease: Lease, to_owner: str, ttl: float | None = None
    ) -> Lease:
        """Planned switchover: hand ``resource`` from ``from_lease``'s owner to ``to_owner``
        atomically (one compare-and-set on the epoch), with epoch + 1. ``LeaseConflict``
        when ``from_lease`` is not the current term."""

    @abc.abstractmethod
    def get_lease(self, resource: str) -> Lease | None:
        """The lease as stored (owner "" after a release), or None when never taken."""

    # -- lifecycle -------------------------------------------------------------------------

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
