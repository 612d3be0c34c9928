"""rpc-error material of the management plane (RFC 6241 §4.3, Appendix A).

`MgmtError` carries what a NETCONF `<rpc-error>` needs: error-tag, error-type, severity,
error-path (a data path in module-name-prefixed form, e.g.
`/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='192.0.2.2']/peer-as`), error-app-tag,
error-message and error-info (name -> text, e.g. `{"session-id": "3"}` for lock-denied or
`{"bad-element": "foo"}` for unknown-element). One operation may fail with several errors
(edit-config with continue-on-error, validation): `errors` lists them all, the first being
the exception itself.
"""

from __future__ import annotations

TAGS = frozenset(
    {
        "in-use",
        "invalid-value",
        "too-big",
        "missing-attribute",
        "bad-attribute",
        "unknown-attribute",
        "missing-element",
        "bad-element",
        "unknown-element",
        "unknown-namespace",
        "access-denied",
        "lock-denied",
        "resource-denied",
        "rollback-failed",
        "data-exists",
        "data-missing",
        "operation-not-supported",
        "operation-failed",
        "partial-operation",
        "malformed-message",
    }
)


class MgmtError(Exception):
    def __init__(
        self,
        tag: str,
        message: str,
        *,
        path: str | None = None,
        app_tag: str | None = None,
        info: dict[str, str] | None = None,
        severity: str = "error",
        type_: str = "application",
    ) -> None:
        if tag not in TAGS:
            raise ValueError(f"unknown error-tag {tag!r}")
        super().__init__(message)
        self.tag = tag
        self.message = message
        self.path = path
        self.app_tag = app_tag
        self.info = dict(info or {})
        self.severity = severity
        self.type = type_
        self.errors: list[MgmtError] = [self]

    @classmethod
    def many(cls, errors: list[MgmtError]) -> MgmtError:
        """One exception for several errors: the first, with `errors` listing all."""
        first = errors[0]
        first.errors = list(errors)
        return first

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"error-type": self.type, "error-tag": self.tag, "error-severity": self.severity,
                                "error-message": self.message}
        if self.app_tag:
            d["error-app-tag"] = self.app_tag
        if self.path:
            d["error-path"] = self.path
        if self.info:
            d["error-info"] = dict(sorted(self.info.items()))
        return d

    def __repr__(self) -> str:
        return f"MgmtError({self.tag!r}, {self.message!r}, path={self.path!r})"
