"""One contract suite for every checkpoint store backend (docs/nsr-store.md).

Backends: the embedded SQLite store on a tmp path, MongoStore on mongomock, and MongoStore on
a real replica set when FCR_MONGODB_URI names one (skipped with the reason otherwise).
Tests marked embedded-only need several processes on one file (lease contention, kill -9 in
the middle of a batch).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import secrets
import signal
import sqlite3
import threading
import time

import pytest

from appliance.nsr.store import (
    CheckpointStore,
    EmbeddedStore,
    FeedTruncated,
    LeaseConflict,
    MongoStore,
    Record,
    StoreUnavailable,
    open_store,
)

MONGO_URI = os.environ.get("FCR_MONGODB_URI", "")
BACKENDS = ["embedded", "mongomock", "mongodb"]


@pytest.fixture(params=BACKENDS)
def make_store(request, tmp_path):
    """A factory: every call opens one more handle on the same store (like a second process
    or a second box would)."""
    kind = request.param
    opened: list[CheckpointStore] = []
    if kind == "embedded":
        path = tmp_path / "checkpoint.db"

        def make(**kw):
            s = EmbeddedStore(path, **kw)
            opened.append(s)
            return s
    elif kind == "mongomock":
        mongomock = pytest.importorskip("mongomock")
        client = mongomock.MongoClient()

        def make(**kw):
            s = MongoStore(client=client, database="fcrtest", **kw)
            opened.append(s)
            return s
    else:
        if not MONGO_URI:
            pytest.skip("FCR_MONGODB_URI is not set: no real MongoDB replica set to test against")
        dbname = f"fcrtest_{secrets.token_hex(4)}"

        def make(**kw):
            s = MongoStore(MONGO_URI, database=dbname, **kw)
            opened.append(s)
            return s
    make.kind = kind
    yield make
    if kind == "mongodb" and opened:
        opened[0].client.drop_database(opened[0].db.name)
    for s in opened:
        s.close()


@pytest.fixture
def store(make_store):
    return make_store()


def _state_from_feed(store, since=0, state=None):
    state = {} if state is None else state
    last = since
    for ch in store.changes(since):
        assert ch.seq > last, "feed sequences must strictly increase"
        last = ch.seq
        if ch.deleted:
            state.pop((ch.ns, ch.key), None)
        else:
            state[(ch.ns, ch.key)] = ch.value
    return state, last


def _state_from_scan(store, namespaces):
    return {(r.ns, r.key): r.value for ns in namespaces for r in store.scan(ns)}


# -- records -----------------------------------------------------------------------------------


def test_put_get_scan_delete(store):
    assert store.last_seq() == 0
    assert store.get("bgp/peer", "192.0.2.1") is None
    s1 = store.put("bgp/peer", "192.0.2.1", {"state": "Established", "hold": 90})
    s2 = store.put("bgp/adj-in/192.0.2.1", "0a000118", b"\x40\x01\x01\x00")
    assert 0 < s1 < s2 == store.last_seq()
    rec = store.get("bgp/peer", "192.0.2.1")
    assert rec.value == {"state": "Established", "hold": 90} and rec.seq == s1
    assert store.get("bgp/adj-in/192.0.2.1", "0a000118").value == b"\x40\x01\x01\x00"
    assert isinstance(store.get("bgp/adj-in/192.0.2.1", "0a000118").value, bytes)
    # overwrite: new seq, new value
    s3 = store.put("bgp/peer", "192.0.2.1", {"state": "OpenConfirm"})
    assert s3 > s2 and store.get("bgp/peer", "192.0.2.1").seq == s3
    # scan: namespace + prefix, key order
    store.put_many([("t", k, b"v" + k.encode()) for k in ["b/2", "a/1", "b/1", "c", "b/10", "bb"]])
    assert [r.key for r in store.scan("t")] == ["a/1", "b/1", "b/10", "b/2", "bb", "c"]
    assert [r.key for r in store.scan("t", "b/")] == ["b/1", "b/10", "b/2"]
    assert [r.value for r in store.scan("t", "b/1")] == [b"vb/1", b"vb/10"]
    assert list(store.scan("t", "zz")) == [] and list(store.scan("nothing")) == []
    # delete
    s4 = store.delete("t", "b/10")
    assert s4 > s3 and store.get("t", "b/10") is None
    assert [r.key for r in store.scan("t", "b/")] == ["b/1", "b/2"]
    with pytest.raises(TypeError):
        store.put("t", "x", "a str is neither bytes nor a dict")
    with pytest.raises(ValueError):
        store.put("", "x", b"")


def test_batches(store):
    n = 2500
    last = store.put_many([("adj", f"{i:06d}", os.urandom(40)) for i in range(n)])
    assert last == store.last_seq() >= n
    assert len(list(store.scan("adj"))) == n
    seqs = [r.seq for r in store.scan("adj")]
    assert len(set(seqs)) == n and max(seqs) == last
    # one batch with writes and deletes
    last2 = store.put_many(
        [("adj", "000001", b"new"), ("adj", "zzz", {"k": [1, 2]})],
        deletes=[("adj", "000002"), ("adj", "000003"), ("adj", "never-existed")],
    )
    assert last2 > last
    assert store.get("adj", "000001").value == b"new"
    assert store.get("adj", "000002") is None and store.get("adj", "000003") is None
    assert store.get("adj", "zzz").value == {"k": [1, 2]}
    assert len(list(store.scan("adj"))) == n - 1
    # an empty batch writes nothing
    assert store.put_many([]) == store.last_seq() == last2


def test_second_handle_sees_writes(make_store):
    a, b = make_store(), make_store()
    a.put("ns", "k", b"1")
    assert b.get("ns", "k").value == b"1"
    b.put("ns", "k", b"2")
    assert a.get("ns", "k").value == b"2"


def test_same_key_twice_in_one_batch_last_wins(store):
    last = store.put_many([("d", "k", b"1"), ("d", "other", b"x"), ("d", "k", {"v": 2})])
    rec = store.get("d", "k")
    assert rec.value == {"v": 2} and rec.seq <= last
    state, _ = _state_from_feed(store)
    assert state == {("d", "k"): {"v": 2}, ("d", "other"): b"x"}


def test_large_values(make_store):
    """A RIB snapshot as one record: several MB of bytes, a dict of 100,000 routes."""
    # MongoDB keeps values above blob_bytes out of line (16 MB document limit): 1 MiB parts
    # here so that a 6 MB value is 6 parts
    s = make_store() if make_store.kind == "embedded" else make_store(blob_bytes=1 << 20)
    big = os.urandom(6 << 20)
    rib = {f"10.{i >> 8 & 255}.{i & 255}.0/24": {"nh": "192.0.2.1", "path": [65001, i]}
           for i in range(100_000)}
    s1 = s.put_many([("rib", "snapshot", big), ("rib", "small", b"s")])
    s2 = s.put("rib", "json", rib)
    assert s.get("rib", "snapshot").value == big and s.get("rib", "json").value == rib
    assert [(r.key, len(r.value)) for r in s.scan("rib")] == [
        ("json", len(rib)), ("small", 1), ("snapshot", len(big))]
    state, last = _state_from_feed(s)
    assert last == s2 and state[("rib", "snapshot")] == big and state[("rib", "json")] == rib
    # a second handle (another process, another box) reads it too
    other = make_store() if make_store.kind == "embedded" else make_store(blob_bytes=1 << 20)
    assert other.get("rib", "snapshot").value == big
    # overwritten by a small value, compacted: the big one is gone, the feed still replays
    s3 = s.put("rib", "snapshot", b"tiny")
    s.delete("rib", "json")
    s.compact(s3)
    assert s.get("rib", "snapshot").value == b"tiny" and s.get("rib", "json") is None
    assert [c.value for c in s.changes(s3)] == [None]
    if make_store.kind != "embedded":
        assert s._blobs.count_documents({}) == 0, "parts of overwritten values left behind"
    assert s1 < s2 < s3


# -- change feed -------------------------------------------------------------------------------


def test_change_feed_order_and_resume(store):
    store.put_many([("p", "a", b"1"), ("p", "b", b"2")])
    mid = store.put_many([("p", "c", {"x": 1})])
    store.put("p", "a", b"3")
    store.delete("p", "b")
    store.put_many([("q", f"k{i}", b"%d" % i) for i in range(100)])
    changes = list(store.changes(0))
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert seqs[-1] == store.last_seq()
    # replaying the feed reproduces the store
    state, last = _state_from_feed(store)
    assert state == _state_from_scan(store, ["p", "q"])
    assert ("p", "b") not in state and state[("p", "a")] == b"3"
    # resume from a sequence: exactly the changes after it, and they bring a follower that
    # had the state at `mid` to the current state
    tail = list(store.changes(mid))
    assert tail == [c for c in changes if c.seq > mid]
    assert any(c.deleted and c.key == "b" for c in tail)
    assert list(store.changes(last)) == []
    # limit
    assert list(store.changes(0, limit=3)) == changes[:3]
    if not store.feed_compacted:
        assert [c.value for c in changes if c.key == "a"] == [b"1", b"3"]


def test_follower_catches_up_with_follow(make_store):
    writer, reader = make_store(), make_store()
    writer.put("f", "start", b"0")
    got = []
    start = reader.last_seq()

    def follow():
        for ch in reader.changes(start, follow=True, poll_interval=0.002, timeout=1.0):
            got.append(ch)
            if ch.key == "k99":
                return

    t = threading.Thread(target=follow)
    t.start()
    for i in range(100):
        writer.put_many([("f", f"k{i}", b"%d" % i)])
    t.join(10)
    assert not t.is_alive()
    assert [c.key for c in got] == [f"k{i}" for i in range(100)]
    assert [c.seq for c in got] == sorted(c.seq for c in got)


def test_feed_follow_stops_after_idle_timeout(store):
    t0 = time.monotonic()
    assert list(store.changes(0, follow=True, timeout=0.2)) == []
    assert 0.15 < time.monotonic() - t0 < 2


def test_compact_truncates_feed(store):
    store.put_many([("c", "a", b"1"), ("c", "b", b"2")])
    store.delete("c", "a")
    mark = store.put("c", "b", b"3")
    store.put("c", "d", b"4")
    assert store.compact(mark) == mark
    with pytest.raises(FeedTruncated) as err:
        list(store.changes(1))
    assert err.value.floor == mark
    assert [c.key for c in store.changes(mark)] == ["d"]
    assert store.get("c", "b").value == b"3" and store.get("c", "a") is None


def test_async_feed(store):
    import asyncio

    store.put_many([("a", str(i), b"x") for i in range(10)])

    async def main():
        got = []
        async for ch in store.achanges(0):
            got.append(ch.seq)
            if len(got) == 10:
                break
        return got

    assert asyncio.run(main()) == [c.seq for c in store.changes(0)]


# -- leases ------------------------------------------------------------------------------------


def test_lease_acquire_conflict_renew_release(make_store):
    a, b = make_store(), make_store()
    la = a.acquire_lease("session/192.0.2.1", "engine-A", ttl=30)
    assert (la.owner, la.epoch, la.resource) == ("engine-A", 1, "session/192.0.2.1")
    assert la.expires > a.now() and a.check(la) and b.check(la)
    with pytest.raises(LeaseConflict) as err:
        b.acquire_lease("session/192.0.2.1", "engine-B", ttl=30)
    assert err.value.current.owner == "engine-A" and err.value.current.epoch == 1
    # the holder again: a renewal, same epoch
    again = a.acquire_lease("session/192.0.2.1", "engine-A", ttl=30)
    assert again.epoch == 1 and again.expires >= la.expires
    renewed = a.renew(la, ttl=60)
    assert renewed.epoch == 1 and renewed.expires > la.expires and a.check(renewed)
    # other resources are independent
    assert b.acquire_lease("session/192.0.2.2", "engine-B", ttl=30).epoch == 1
    # release: the epoch stays, the next owner gets epoch + 1
    a.release(renewed)
    assert not a.check(renewed)
    assert a.get_lease("session/192.0.2.1").owner == ""
    lb = b.acquire_lease("session/192.0.2.1", "engine-B", ttl=30)
    assert lb.epoch == 2 and b.check(lb)
    # a stale release does not free the new owner's lease
    a.release(renewed)
    assert b.check(lb) and a.get_lease("session/192.0.2.1").owner == "engine-B"
    with pytest.raises(LeaseConflict):
        a.renew(renewed)
    with pytest.raises(ValueError):
        a.acquire_lease("x", "engine-A", ttl=0)


def test_lease_expiry_steal_and_stale_owner(make_store):
    a, b = make_store(), make_store()
    la = a.acquire_lease("sess", "A", ttl=0.3)
    with pytest.raises(LeaseConflict):
        b.acquire_lease("sess", "B", ttl=5)
    time.sleep(0.4)
    assert not a.check(la)  # expired: even the holder must not act on it
    lb = b.acquire_lease("sess", "B", ttl=5)
    assert lb.epoch == la.epoch + 1
    # the stale owner wakes up: newer epoch in the store, it stays silent
    assert not a.check(la)
    with pytest.raises(LeaseConflict) as err:
        a.renew(la)
    assert err.value.current.epoch == lb.epoch and err.value.current.owner == "B"
    with pytest.raises(LeaseConflict):
        a.transfer("sess", la, "A2")
    with pytest.raises(LeaseConflict):
        a.put("bgp/peer", "x", b"stale", fence=la)
    assert a.get("bgp/peer", "x") is None
    assert b.check(lb)
    # an expired lease that nobody took is renewed in the same epoch (the epoch fences)
    lc = a.acquire_lease("other", "A", ttl=0.2)
    time.sleep(0.3)
    assert not a.check(lc)
    lc2 = a.renew(lc, ttl=5)
    assert lc2.epoch == lc.epoch and a.check(lc2)


def test_lease_transfer(make_store):
    old, new = make_store(), make_store()
    lo = old.acquire_lease("sess", "engine-old", ttl=10)
    ln = old.transfer("sess", lo, "engine-new")
    assert (ln.owner, ln.epoch) == ("engine-new", lo.epoch + 1)
    assert ln.ttl == lo.ttl
    assert new.check(ln) and not new.check(lo) and not old.check(lo)
    # the old owner cannot hand it over twice, or write fenced, or renew
    with pytest.raises(LeaseConflict):
        old.transfer("sess", lo, "engine-third")
    with pytest.raises(LeaseConflict):
        old.renew(lo)
    with pytest.raises(LeaseConflict):
        old.put("bgp/peer", "p", b"x", fence=lo)
    assert new.put("bgp/peer", "p", b"y", fence=ln) > 0
    # and back (planned switchback): the epoch keeps growing
    lb = new.transfer("sess", ln, "engine-old", ttl=20)
    assert lb.epoch == ln.epoch + 1 and lb.ttl == 20 and old.check(lb)
    with pytest.raises(ValueError):
        new.transfer("other", lb, "x")


def test_epoch_strictly_increases_on_every_owner_change(make_store):
    s = make_store()
    epochs = []
    lease = s.acquire_lease("r", "o0", ttl=10)
    epochs.append(lease.epoch)
    for i in range(1, 13):
        step = i % 3
        if step == 0:
            lease = s.transfer("r", lease, f"o{i}")
        elif step == 1:
            s.release(lease)
            lease = s.acquire_lease("r", f"o{i}", ttl=10)
        else:
            lease = s.renew(lease)
            epochs.append(lease.epoch)
            assert epochs[-1] == epochs[-2]
            epochs.pop()
            continue
        epochs.append(lease.epoch)
    assert epochs == sorted(set(epochs)) and epochs == list(range(1, len(epochs) + 1))


def test_fenced_write(store):
    lease = store.acquire_lease("sess", "A", ttl=10)
    store.put_many([("bgp/peer", "p", b"1")], fence=lease)
    assert store.get("bgp/peer", "p").value == b"1"
    newer = store.transfer("sess", lease, "B")
    with pytest.raises(LeaseConflict):
        store.put_many([("bgp/peer", "p", b"2")], deletes=[("bgp/peer", "p")], fence=lease)
    assert store.get("bgp/peer", "p").value == b"1"
    store.put_many([("bgp/peer", "p", b"3")], fence=newer)
    assert store.get("bgp/peer", "p").value == b"3"


# -- several processes on one embedded store ---------------------------------------------------


def _contender(path: str, owner: str, rounds: int, out) -> None:
    s = EmbeddedStore(path)
    held = []
    got = 0
    deadline = time.monotonic() + 20
    while got < rounds and time.monotonic() < deadline:
        try:
            lease = s.acquire_lease("session/10.0.0.1", owner, ttl=10)
        except LeaseConflict:
            time.sleep(random.random() * 0.002)
            continue
        t1 = s.now()
        assert s.check(lease)
        # read-modify-write under the lease: lost updates would show in the final count
        rec = s.get("ctr", "n")
        n = rec.value["n"] if rec else 0
        time.sleep(random.random() * 0.002)
        s.put("ctr", "n", {"n": n + 1}, fence=lease)
        t2 = s.now()
        s.release(lease)
        held.append((t1, t2, lease.epoch, owner))
        got += 1
    s.close()
    out.put(held)


@pytest.mark.timeout(60)
def test_two_processes_contend_for_a_lease(make_store, tmp_path):
    if make_store.kind != "embedded":
        pytest.skip("several processes on one file: the embedded store's case (ISSU)")
    path = str(tmp_path / "checkpoint.db")
    EmbeddedStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    rounds = 40
    procs = [ctx.Process(target=_contender, args=(path, f"engine-{i}", rounds, out))
             for i in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=45) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    held = sorted(h for r in results for h in r)
    assert len(held) == 2 * rounds
    # never two owners at once: the hold intervals are disjoint, epochs grow with time
    for (_a1, a2, ea, _), (b1, _b2, eb, _) in zip(held, held[1:], strict=False):
        assert a2 <= b1, "two processes held the lease at the same time"
        assert eb > ea
    assert len({h[2] for h in held}) == len(held)
    s = EmbeddedStore(path)
    assert s.get("ctr", "n").value == {"n": 2 * rounds}
    s.close()


def _crash_writer(path: str, gen: int, n: int, ready) -> None:
    s = EmbeddedStore(path)
    blob = os.urandom(60)
    records = [("adj", f"{i:07d}", b"%08d" % gen + blob) for i in range(n)]
    ready.send("go")
    s.put_many(records)
    ready.send("done")
    time.sleep(60)


@pytest.mark.timeout(120)
def test_kill_9_mid_batch_leaves_old_or_new_batch(make_store, tmp_path):
    if make_store.kind != "embedded":
        pytest.skip("process crash on the box: the embedded store's case")
    path = str(tmp_path / "checkpoint.db")
    n = 60_000
    ctx = multiprocessing.get_context("fork")
    EmbeddedStore(path).close()
    outcomes = []
    rng = random.Random(7)
    for gen in range(1, 7):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_crash_writer, args=(path, gen, n, child))
        p.start()
        assert parent.poll(20) and parent.recv() == "go"
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
        finished = parent.poll(0)
        s = EmbeddedStore(path)
        gens = {r.value[:8] for r in s.scan("adj")}
        count = sum(1 for _ in s.scan("adj"))
        s.close()
        assert len(gens) <= 1, f"half a batch survived: generations {sorted(gens)}"
        assert count in (0, n)
        outcomes.append((gen, finished, gens))
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    # the kills landed both inside and (possibly) after batches; at least one inside
    assert any(not finished for _, finished, _ in outcomes)


# -- unavailable store -------------------------------------------------------------------------


def test_unavailable_store(make_store, tmp_path):
    if make_store.kind == "embedded":
        if os.geteuid() == 0:
            bad = "/proc/fcr-nsr-checkpoint.db"  # root ignores directory modes; procfs does not
        else:
            ro = tmp_path / "ro"
            ro.mkdir()
            ro.chmod(0o555)
            bad = str(ro / "checkpoint.db")
        with pytest.raises(StoreUnavailable, match="cannot open"):
            EmbeddedStore(bad)
        with pytest.raises(StoreUnavailable, match="does not exist"):
            EmbeddedStore(tmp_path / "missing" / "checkpoint.db")
        # closed handle
        s = make_store()
        s.close()
        with pytest.raises(StoreUnavailable, match="closed"):
            s.put("a", "b", b"c")
    else:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable, match="unreachable"):
            MongoStore("mongodb://127.0.0.1:9/?directConnection=true",
                       server_selection_timeout=0.3)
        assert time.monotonic() - t0 < 5


def test_unreachable_mongodb_fails_fast_with_a_clear_message():
    pytest.importorskip("pymongo")
    url = "mongodb://fcr:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=500"
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        s = open_store(url)  # the URI's timeout counts, not the 5 s default
        s.put("bgp/peer", "192.0.2.1", b"x")
    took = time.monotonic() - t0
    msg = str(err.value)
    assert took < 1.5, f"StoreUnavailable after {took:.2f} s: {msg}"
    assert "127.0.0.1:1" in msg and "unreachable" in msg and "Connection refused" in msg
    assert "0.5" in msg and "Topology" not in msg, msg
    assert "s3cret" not in msg and "fcr:***@" in msg


def test_embedded_path_errors_are_precise(tmp_path):
    cases = {
        tmp_path / "missing" / "c.db": "directory .*missing does not exist",
        tmp_path: "is a directory",
    }
    (tmp_path / "plain").write_text("x")
    cases[tmp_path / "plain" / "c.db"] = "plain is not a directory"
    (tmp_path / "junk.db").write_bytes(b"not a database, just text" * 100)
    cases[tmp_path / "junk.db"] = "cannot open for writing: file is not a database"
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        EmbeddedStore(ro / "c.db").close()
        ro.chmod(0o555)
        cases[ro / "c.db"] = "cannot open for writing: directory .*ro is not writable"
        cases[ro / "new.db"] = "cannot open for writing: directory .*ro is not writable"
        rw = tmp_path / "rw"
        rw.mkdir()
        EmbeddedStore(rw / "c.db").close()
        (rw / "c.db").chmod(0o444)
        cases[rw / "c.db"] = "cannot open for writing: the file is not writable"
    for path, pattern in cases.items():
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable, match=pattern) as err:
            open_store(str(path))
        assert time.monotonic() - t0 < 1.0
        assert str(path) in str(err.value)


def test_embedded_reads_page_by_bytes(tmp_path, monkeypatch):
    from appliance.nsr.store import embedded

    monkeypatch.setattr(embedded, "_READ_BYTES", 2000)
    s = EmbeddedStore(tmp_path / "c.db")
    recs = [("n", f"k{i:03d}", os.urandom(700 if i % 3 else 10)) for i in range(40)]
    s.put_many(recs)
    assert [(r.key, r.value) for r in s.scan("n")] == [(k, v) for _, k, v in recs]
    assert [(c.key, c.value) for c in s.changes(0)] == [(k, v) for _, k, v in recs]
    assert len(list(s.changes(0, limit=25))) == 25
    s.close()


_LAYOUT_1 = (  # the embedded layout before user_version 2 (sequence by AUTOINCREMENT)
    "CREATE TABLE records(seq INTEGER PRIMARY KEY AUTOINCREMENT, ns TEXT NOT NULL,"
    " key TEXT NOT NULL, value)",
    "CREATE UNIQUE INDEX records_key ON records(ns, key)",
    "CREATE TABLE leases(resource TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch INTEGER NOT NULL,"
    " expires REAL NOT NULL, ttl REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE meta(name TEXT PRIMARY KEY, value) WITHOUT ROWID",
)


def test_embedded_opens_layout_1(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    for stmt in _LAYOUT_1:
        db.execute(stmt)
    for ns, key, value in [("a", "1", b"x"), ("b", "2", '{"v":1}'), ("a", "3", b"y"),
                           ("a", "1", b"x2"), ("a", "3", None)]:
        db.execute("INSERT OR REPLACE INTO records(ns, key, value) VALUES(?,?,?)", (ns, key, value))
    db.execute("INSERT INTO leases VALUES('sess', 'A', 3, 0, 10)")
    db.execute("INSERT INTO meta VALUES('floor', 2)")
    db.close()
    s = EmbeddedStore(path)
    assert s.last_seq() == 5
    assert s.get("a", "1") == Record("a", "1", b"x2", 4)
    assert s.get("b", "2").value == {"v": 1} and s.get("a", "3") is None
    assert [(c.seq, c.ns, c.key, c.value) for c in s.changes(2)] == [
        (4, "a", "1", b"x2"), (5, "a", "3", None)]
    assert s.get_lease("sess").epoch == 3
    assert s.put("a", "4", b"z") == 6
    s.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("SELECT name FROM sqlite_master WHERE name='records'").fetchone() is None
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(StoreUnavailable, match="layout 99 is newer"):
        EmbeddedStore(path)


def test_open_store_urls(tmp_path):
    s = open_store(f"sqlite://{tmp_path}/a.db?durability=power")
    assert isinstance(s, EmbeddedStore) and s.durability == "power"
    s.close()
    s = open_store(str(tmp_path / "b.db"))
    assert isinstance(s, EmbeddedStore) and s.durability == "process"
    s.close()
    pytest.importorskip("mongomock")
    s = open_store("mongomock://x")
    assert isinstance(s, MongoStore) and s.feed_compacted is False
    s.close()
