"""Checkpoint store for NSR: one interface (``base.CheckpointStore``), two backends.

``open_store(url)``:

- ``/path/to/file.db`` or ``sqlite:///path/to/file.db`` (optionally ``?durability=power``):
  the embedded store (default; one box, several processes);
- ``mongodb://...`` / ``mongodb+srv://...``: a MongoDB replica set;
- ``mongomock://[database]``: an in-memory MongoDB (tests only; needs mongomock).

See docs/nsr-store.md.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from .base import (
    Change,
    CheckpointStore,
    FeedTruncated,
    Lease,
    LeaseConflict,
    Record,
    StoreError,
    StoreUnavailable,
)
from .embedded import EmbeddedStore
from .mongo import MongoStore

__all__ = [
    "Change",
    "CheckpointStore",
    "EmbeddedStore",
    "FeedTruncated",
    "Lease",
    "LeaseConflict",
    "MongoStore",
    "Record",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]


def open_store(url: str, **options) -> CheckpointStore:
    if url.startswith(("mongodb://", "mongodb+srv://")):
        return MongoStore(url, **options)
    if url.startswith("mongomock://"):
        import mongomock

        name = url[len("mongomock://"):].strip("/") or "fcr"
        return MongoStore(client=mongomock.MongoClient(), database=name, **options)
    if url.startswith("sqlite://"):
        parts = urlsplit(url)
        for k, v in parse_qs(parts.query).items():
            options.setdefault(k, v[-1])
        return EmbeddedStore(parts.path, **options)
    return EmbeddedStore(url, **options)
