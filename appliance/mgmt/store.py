"""Files of the management plane under its state directory, each written atomically.

    state_dir/startup.json            the startup datastore (RFC 7951 JSON)
    state_dir/history/NNNNNN.json     one committed revision: metadata + configuration
    state_dir/confirmed.json          a pending confirmed commit (deadline, rollback config)

`atomic_write` writes a temp file in the same directory, fsyncs it, renames it over the
target and fsyncs the directory: after a crash at any point the file holds either the old
or the new content, never a mix (DESIGN.md invariant 6).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .yangdata import dumps


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _fsync_dir(path.parent)


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(dumps(config).encode()).hexdigest()


class Store:
    def __init__(self, state_dir: str | Path, max_history: int = 100) -> None:
        self.dir = Path(state_dir)
        self.history_dir = self.dir / "history"
        self.startup_path = self.dir / "startup.json"
        self.confirmed_path = self.dir / "confirmed.json"
        self.max_history = max(50, max_history)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.history_dir.mkdir(exist_ok=True)
        for stale in self.dir.glob(".*.tmp"):  # leftovers of a crash mid-write
            stale.unlink(missing_ok=True)
        for stale in self.history_dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)

    # -- startup --------------------------------------------------------------------
    def read_startup(self) -> dict[str, Any] | None:
        try:
            text = self.startup_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return json.loads(text) if text.strip() else {}

    def write_startup(self, config: dict[str, Any]) -> None:
        atomic_write(self.startup_path, dumps(config))

    def delete_startup(self) -> None:
        atomic_remove(self.startup_path)

    # -- history --------------------------------------------------------------------
    def _files(self) -> list[tuple[int, Path]]:
        out = []
        for p in self.history_dir.glob("*.json"):
            if p.stem.isdigit():
                out.append((int(p.stem), p))
        return sorted(out)

    def history(self) -> list[dict[str, Any]]:
        """Revisions, newest first, without their configuration."""
        entries = []
        for _seq, p in reversed(self._files()):
            try:
                rec = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a damaged revision is skipped, never fatal
            entries.append(rec["meta"])
        for i, e in enumerate(entries):
            e["index"] = i
        return entries

    def revision(self, rev_id: str) -> dict[str, Any] | None:
        for _seq, p in reversed(self._files()):
            try:
                rec = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if rec["meta"]["id"] == rev_id:
                return rec
        return None

    def append(self, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        files = self._files()
        seq = files[-1][0] + 1 if files else 1
        meta = {"id": f"r{seq:04d}-{config_hash(config)[:8]}", "seq": seq, **meta}
        atomic_write(self.history_dir / f"{seq:06d}.json",
                     json.dumps({"meta": meta, "config": config}, indent=1, sort_keys=True) + "\n")
        for _s, p in files[: max(0, len(files) + 1 - self.max_history)]:
            p.unlink(missing_ok=True)
        return meta

    # -- pending confirmed commit -----------------------------------------------------
    def read_confirmed(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.confirmed_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:
            return None

    def write_confirmed(self, record: dict[str, Any]) -> None:
        atomic_write(self.confirmed_path, json.dumps(record, indent=1, sort_keys=True) + "\n")

    def clear_confirmed(self) -> None:
        atomic_remove(self.confirmed_path)
