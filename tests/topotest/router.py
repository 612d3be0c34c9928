"""Common base of the router wrappers: a workdir, processes started in a Host, logs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import jinja2

from .netns import Host, ensure_dir

TEMPLATES = Path(__file__).parent / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render(template: str, **kw) -> str:
    return _env.get_template(template).render(**kw)


class Router:
    """A daemon (or a few) running in ``host`` with files under ``workdir``."""

    def __init__(self, host: Host, workdir: os.PathLike | str) -> None:
        self.host = host
        self.workdir = ensure_dir(workdir)
        self.procs: dict[str, subprocess.Popen] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, name: str, cmd: list[str], **kw) -> subprocess.Popen:
        proc = self.host.popen(cmd, log=self.workdir / f"{name}.out", **kw)
        self.procs[name] = proc
        return proc

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def running(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def stop(self) -> None:
        """Stop this router's processes (SIGTERM, then SIGKILL after a bound), newest first."""
        for name in reversed(list(self.procs)):
            Host.stop_process(self.procs[name])

    def tail(self, name: str, lines: int = 40) -> str:
        """Last lines of a log file in the workdir, for failure messages."""
        path = self.workdir / name
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"<no {path}>"
