"""Structured logging: one logfmt line per event on stderr.

    ts=2026-11-22T05:30:00.123Z level=info logger=fcr.bgp event=bgp.state peer=10.0.0.2 from=OpenConfirm to=Established

Callers either pass ``extra={"event": "...", "fields": {...}}`` or a message that is
already logfmt; plain messages are quoted into ``msg=``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n\t'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [f"ts={ts}.{int(record.msecs):03d}Z", f"level={record.levelname.lower()}", f"logger={record.name}"]
        event = getattr(record, "event", None)
        if event:
            parts.append(f"event={_quote(event)}")
        fields = getattr(record, "fields", None)
        message = record.getMessage()
        if message:
            # Messages that already are logfmt (start with key=) are kept as they are.
            head = message.split(" ", 1)[0]
            parts.append(message if ("=" in head and not head.startswith("=")) else f"msg={_quote(message)}")
        if fields:
            parts.extend(f"{k}={_quote(v)}" for k, v in fields.items())
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Emit one structured event line."""
    if logger.isEnabledFor(level):
        logger.log(level, "", extra={"event": event, "fields": fields})
