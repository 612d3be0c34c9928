"""run_issu's decisions after a failed adoption, with fake engines (no processes, no sockets).

The rule (appliance/nsr/issu.py): roll back (kill the new engine, nsr.resume on the old one)
only when the new engine never took the sessions (it died, or it still says 'standby');
once it says 'active' its sockets are live and it is kept, whatever failed afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.engine.client import ControlError
from appliance.nsr import issu

OLD = "e0"


class FakeProc:
    pid = 4321

    def __init__(self) -> None:
        self.returncode: int | None = None
        self.killed = False

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.killed = True
        self.returncode = -9

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


class World:
    """Two engines behind their control paths. ``adopt`` says what the new engine's
    nsr.adopt does: "ok", "refused", "timeout", "dies"; ``new_role`` what its nsr.status
    then says (None: it does not answer); ``moved``: it took the well-known path over."""

    def __init__(self, tmp: Path, *, adopt: str = "ok", new_role: str | None = "standby",
                 moved: bool = False, release: str = "ok", resume: str = "ok") -> None:
        self.active = str(tmp / "fcrd.sock")
        self.adopt, self.new_role, self.moved = adopt, new_role, moved
        self.release, self.resume = release, resume
        self.calls: list[tuple[str, str]] = []
        self.proc = FakeProc()
        self.new_id: str | None = None
        self.tmp: str | None = None
        self.old_role = "active"
        self.terminated: list[int] = []
        self.has_moved = False  # becomes ``moved`` once nsr.adopt was called

    def start_standby(self, engine_id: str, control: str) -> FakeProc:
        self.new_id, self.tmp = engine_id, control
        Path(control).touch()  # run_issu waits for the socket file
        return self.proc

    def old_status(self) -> dict[str, Any]:
        return {"engine-id": OLD, "role": self.old_role, "active": self.old_role == "active",
                "pid": 1111, "epoch": 7 if self.old_role == "active" else None,
                "last-switchover": {"to": self.new_id, "epoch": 8, "result": "released"}
                if self.old_role == "released" else None,
                "standbys": [{"engine-id": self.new_id, "fresh": True, "synchronized": True,
                              "ready": True}] if self.new_id else []}

    def new_status(self) -> dict[str, Any]:
        if self.proc.returncode is not None or self.new_role is None:
            raise ConnectionRefusedError("no answer")
        return {"engine-id": self.new_id, "role": self.new_role, "active": self.new_role == "active",
                "epoch": 8 if self.new_role == "active" else None, "sessions": ["192.0.2.2"],
                "lease": {"owner": self.new_id, "epoch": 8},
                "last-switchover": {"result": "adopted", "epoch": 8, "timing": {"done": 0.2}}}

    def call(self, path: str, method: str, timeout: float = 30.0, **params: Any) -> Any:
        self.calls.append((path, method))
        if path == self.tmp:
            if self.has_moved:  # nothing listens there any more
                raise FileNotFoundError(path)
            return self._new(method)
        return self._new(method) if self.has_moved else self._old(method, params)

    def _old(self, method: str, params: dict[str, Any]) -> Any:
        if method == "nsr.status":
            return self.old_status()
        if method == "nsr.release":
            if self.release == "refused":
                raise ControlError("switchover refused: standby is not synchronized")
            self.old_role = "released"
            if self.release == "timeout":
                raise TimeoutError("timed out")
            return {"to": params["to"], "epoch": 8, "peers": ["192.0.2.2"], "timing": {}}
        if method == "nsr.resume":
            if self.resume == "refused":
                raise ControlError("resume refused: the lease moved on")
            self.old_role = "active"
            return {"epoch": 9, "peers": ["192.0.2.2"]}
        raise AssertionError(method)

    def _new(self, method: str) -> Any:
        if self.proc.returncode is not None:
            raise ConnectionRefusedError("dead")
        if method == "engine.ping":
            return {"pid": self.proc.pid}
        if method == "nsr.status":
            return self.new_status()
        if method == "nsr.adopt":
            self.has_moved = self.moved
            if self.adopt == "refused":
                raise ControlError("adopt refused: handover record is for epoch 7, lease is 8")
            if self.adopt == "timeout":
                raise TimeoutError("timed out")
            if self.adopt == "dies":
                self.proc.returncode = 70
                raise ControlError("engine closed the control connection")
            self.new_role = "active"
            return {"epoch": 8, "peers": ["192.0.2.2"], "timing": {"done": 0.1}}
        raise AssertionError(method)

    def methods(self) -> list[str]:
        return [m for _p, m in self.calls]


@pytest.fixture
def world(tmp_path, monkeypatch):
    def make(**kw: Any) -> World:
        w = World(tmp_path, **kw)
        monkeypatch.setattr(issu, "call", w.call)
        monkeypatch.setattr(issu, "_terminate", w.terminated.append)
        monkeypatch.setattr(issu, "PROBE_TIMEOUT", 0.3)
        monkeypatch.setattr(issu.time, "sleep", lambda s: None)
        return w

    return make


def run(w: World) -> dict[str, Any]:
    return issu.run_issu(w.active, w.start_standby, ready_timeout=1.0)


def test_success_stops_the_old_engine(world):
    w = world()
    out = run(w)
    assert out["error"] is None and out["adopted"]["epoch"] == 8
    assert out["engine-id"] == w.new_id and not w.proc.killed
    assert w.terminated == [1111]
    assert "nsr.resume" not in w.methods()


def test_adopt_refused_rolls_back(world):
    w = world(adopt="refused", new_role="standby")
    with pytest.raises(issu.IssuError) as err:
        run(w)
    assert err.value.resumed and "resumed" in str(err.value)
    assert w.proc.killed
    assert "nsr.resume" in w.methods() and w.old_role == "active"
    assert w.terminated == []


def test_adopt_timed_out_but_adopted_is_kept(world):
    """The answer never came, but the new engine is active (and has moved to the
    well-known path): killing it would reset the sessions. Kept, old stopped, error told."""
    w = world(adopt="timeout", new_role="active", moved=True)
    out = run(w)
    assert not w.proc.killed
    assert "nsr.resume" not in w.methods()
    assert out["error"] and "timed out" in out["error"]
    assert out["adopted"]["epoch"] == 8 and out["adopted"]["peers"] == ["192.0.2.2"]
    assert w.terminated == [1111]


def test_adopt_failed_late_on_temporary_path_is_kept(world):
    """nsr.adopt answered an error after the sessions were live (role active, path not
    moved yet): same, no rollback."""
    w = world(adopt="refused", new_role="active")
    out = run(w)
    assert not w.proc.killed and "nsr.resume" not in w.methods()
    assert "adopt refused" in out["error"]


def test_new_engine_died_before_adopt_resumes(world):
    w = world(adopt="dies")
    with pytest.raises(issu.IssuError) as err:
        run(w)
    assert err.value.resumed and "resumed" in str(err.value)
    assert "nsr.resume" in w.methods() and w.old_role == "active"
    assert w.terminated == []


def test_no_answer_from_a_live_new_engine_touches_nothing(world):
    w = world(adopt="timeout", new_role=None)
    with pytest.raises(issu.IssuError) as err:
        run(w)
    assert not err.value.resumed and "neither engine was stopped" in str(err.value)
    assert not w.proc.killed and "nsr.resume" not in w.methods()
    assert w.terminated == []


def test_resume_refused_is_reported(world):
    w = world(adopt="refused", resume="refused")
    with pytest.raises(issu.IssuError) as err:
        run(w)
    assert not err.value.resumed and "could not resume" in str(err.value)
    assert w.proc.killed


def test_release_refused_kills_the_standby(world):
    w = world(release="refused")
    with pytest.raises(issu.IssuError) as err:
        run(w)
    assert err.value.resumed and "not synchronized" in str(err.value)
    assert w.proc.killed and "nsr.adopt" not in w.methods()


def test_release_unanswered_but_done_goes_on(world):
    """No answer to nsr.release, but the old engine says it released: the adoption goes on
    (killing the standby would leave the sessions frozen with nobody)."""
    w = world(release="timeout")
    out = run(w)
    assert out["error"] is None and not w.proc.killed
    assert out["released"]["to"] == w.new_id and out["released"]["epoch"] == 8
    assert w.terminated == [1111]
