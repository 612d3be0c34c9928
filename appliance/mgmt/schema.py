"""The YANG schema: load the modules of yang/ into a libyang context, validate configuration.

`load_context()` builds a libyang context from the files in `yang/` only (the appliance
never downloads a module): every FCR module and every IETF module the NETCONF server
advertises, loaded as *implemented* and with exactly the features in `MODULES`. The
`*-types` modules are implemented too, so defaults and identities they define resolve.

`validate_config()` parses an RFC 7951 JSON configuration (text, bytes or a dict) strictly
(unknown members are errors, state data is refused) and validates it (must, when, leafref,
ranges, patterns, keys, mandatory). On failure it raises `ConfigError`, whose `path` is the
data path libyang reports (`/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='192.0.2.2']/
timers/hold-time`) and whose `errors` lists every error libyang gave.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libyang
from _libyang import ffi, lib
from libyang.data import DNode, parser_flags, validation_flags
from libyang.util import IOType, c2str, data_load, str2c

YANG_DIR = Path(__file__).resolve().parents[2] / "yang"

NETCONF_FEATURES = (
    "writable-running",
    "candidate",
    "confirmed-commit",
    "rollback-on-error",
    "validate",
    "xpath",
)

# (module, enabled features), in load order. Everything here is implemented and is what
# the NETCONF server advertises (yang-library, hello, get-schema).
MODULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ietf-yang-types", ()),
    ("ietf-inet-types", ()),
    ("iana-if-type", ()),
    ("ietf-datastores", ()),
    ("ietf-yang-library", ()),
    ("ietf-netconf", NETCONF_FEATURES),
    ("ietf-netconf-with-defaults", ()),
    ("ietf-netconf-monitoring", ()),
    ("ietf-netconf-notifications", ()),
    ("ietf-netconf-acm", ()),
    ("ietf-interfaces", ()),
    ("ietf-ip", ()),
    ("fcr-types", ()),
    ("fcr-routing-policy", ()),
    ("fcr-bgp", ()),
    ("fcr-static", ()),
    ("fcr-bfd", ()),
    ("fcr-routing", ()),
    ("fcr-nsr", ()),
    ("fcr-system", ()),
    ("fcr-mgmt", ()),
)

FCR_MODULES = tuple(name for name, _ in MODULES if name.startswith("fcr-"))


class SchemaError(Exception):
    """A module could not be loaded."""


@dataclass(frozen=True)
class YangError:
    """One libyang error. `path` is a data path (`/fcr-bgp:bgp/...[key='v']/leaf`), or for
    a missing mandatory node the schema path of that node; `line` the input line if known."""

    message: str
    path: str | None = None
    app_tag: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """An invalid configuration. `path` is the data path of the first error."""

    def __init__(self, errors: list[YangError]):
        self.errors = errors or [YangError("invalid configuration")]
        first = self.errors[0]
        self.path = first.path
        self.message = first.message
        self.app_tag = first.app_tag
        super().__init__("; ".join(str(e) for e in self.errors))


# libyang 2.1 words the location as 'Data location "/a/b[k='v']", line number 3.',
# 'Schema location "/a/b".' or 'Line number 3.'
_LOCATION = re.compile(
    r'^(?:(?:Data|Schema) location "(?P<path>.*)")?,? ?(?:[Ll]ine number (?P<line>\d+))?\.?$'
)


def _location(text: str | None) -> tuple[str | None, int | None]:
    if not text:
        return None, None
    m = _LOCATION.match(text)
    if m is None:
        return text, None
    return m["path"], int(m["line"]) if m["line"] else None


def _take_errors(ctx: libyang.Context) -> list[YangError]:
    errors = []
    err = lib.ly_err_first(ctx.cdata)
    while err:
        path, line = _location(c2str(err.path) if err.path else None)
        errors.append(
            YangError(
                message=c2str(err.msg) if err.msg else "",
                path=path,
                app_tag=c2str(err.apptag) if err.apptag else None,
                line=line,
            )
        )
        err = err.next
    lib.ly_err_clean(ctx.cdata, ffi.NULL)
    return errors


def _enable_error_paths() -> None:
    """Make libyang record the data path of each error (ly_err_item.path).

    libyang-python registers its log callback with path resolution off; keep whichever
    callback is in use (the python logger, or none) and turn path resolution on.
    """
    options = lib.ly_log_options(0)
    lib.ly_log_options(options)
    if options & lib.LY_LOLOG:
        lib.ly_set_log_clb(lib.lypy_log_cb, True)
    else:
        lib.ly_set_log_clb(ffi.NULL, True)


def load_context(
    yang_dir: str | Path | None = None,
    modules: tuple[tuple[str, tuple[str, ...]], ...] = MODULES,
) -> libyang.Context:
    """A new libyang context with `modules` implemented, searching only `yang_dir`."""
    yang_dir = Path(yang_dir) if yang_dir is not None else YANG_DIR
    if not yang_dir.is_dir():
        raise SchemaError(f"{yang_dir}: no such directory")
    _enable_error_paths()
    ctx = libyang.Context(str(yang_dir), disable_searchdir_cwd=True)
    try:
        for name, features in modules:
            feats = [str2c(f) for f in features]
            arr = ffi.new(f"char *[{len(feats) + 1}]", [*feats, ffi.NULL])
            mod = lib.ly_ctx_load_module(ctx.cdata, str2c(name), ffi.NULL, arr)
            if mod == ffi.NULL:
                errors = "; ".join(str(e) for e in _take_errors(ctx))
                raise SchemaError(f"cannot load module {name} from {yang_dir}: {errors}")
    except BaseException:
        ctx.destroy()
        raise
    return ctx


@functools.cache
def default_context() -> libyang.Context:
    """The shared context over the repository's yang/ (built once per process)."""
    return load_context()


def validate_config(
    config: str | bytes | Mapping[str, Any],
    ctx: libyang.Context | None = None,
    *,
    validate_present: bool = False,
) -> DNode | None:
    """Parse and validate a configuration given as RFC 7951 JSON; return the data tree.

    The tree holds the default nodes as well (print it with trim or explicit to leave them
    out); the caller owns it (`tree.free()`). An empty document returns None. With
    `validate_present`, modules that have no data in the document are not validated
    (a partial document); by default the whole datastore is.
    """
    ctx = ctx if ctx is not None else default_context()
    if isinstance(config, Mapping):
        text = json.dumps(config)
    elif isinstance(config, bytes):
        text = config.decode("utf-8")
    else:
        text = config
    _enable_error_paths()
    lib.ly_err_clean(ctx.cdata, ffi.NULL)
    data = ffi.new("struct ly_in **")
    keepalive: list[Any] = []
    if data_load(IOType.MEMORY, text, data, keepalive) != lib.LY_SUCCESS:
        raise ConfigError(_take_errors(ctx) or [YangError("cannot read the input")])
    tree = ffi.new("struct lyd_node **")
    ret = lib.lyd_parse_data(
        ctx.cdata,
        ffi.NULL,
        data[0],
        lib.LYD_JSON,
        parser_flags(no_state=True, strict=True),
        validation_flags(no_state=True, validate_present=validate_present),
        tree,
    )
    lib.ly_in_free(data[0], 0)
    if ret != lib.LY_SUCCESS:
        if tree[0] != ffi.NULL:
            lib.lyd_free_all(tree[0])
        raise ConfigError(_take_errors(ctx))
    if tree[0] == ffi.NULL:
        return None
    return DNode.new(ctx, tree[0])
