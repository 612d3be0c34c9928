"""The codec's error types. No other exception may escape a decoder."""

from __future__ import annotations


class BgpCodecError(Exception):
    """Base of every error the BGP codec raises."""


class NotificationError(BgpCodecError):
    """An error that must be answered with a NOTIFICATION and, for most codes, a reset.

    ``code``/``subcode`` are RFC 4271 (and later) error numbers; ``data`` is the
    NOTIFICATION's data field as the RFC for that subcode prescribes.
    """

    def __init__(self, code: int, subcode: int, data: bytes = b"", reason: str = "") -> None:
        self.code = int(code)
        self.subcode = int(subcode)
        self.data = bytes(data)
        self.reason = reason or f"error code {code} subcode {subcode}"
        super().__init__(self.reason)
