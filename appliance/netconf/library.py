"""What the server implements: the module set (from appliance.mgmt.schema.MODULES), the
<hello> capabilities, ietf-yang-library data (RFC 8525 and the deprecated RFC 7895
modules-state), and the schema text for get-schema."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import libyang
from lxml import etree

from appliance.mgmt.schema import MODULES, default_context
from appliance.netconf.xmlutil import DS_NS, MON_NS, YANGLIB_NS, q

CAP = "urn:ietf:params:netconf:capability:"
BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
# Protocol capabilities, in the order they are advertised. Every one is implemented.
PROTOCOL_CAPABILITIES = (
    BASE_10,
    BASE_11,
    CAP + "writable-running:1.0",
    CAP + "candidate:1.0",
    CAP + "confirmed-commit:1.0",
    CAP + "confirmed-commit:1.1",
    CAP + "rollback-on-error:1.0",
    CAP + "validate:1.0",
    CAP + "validate:1.1",
    CAP + "xpath:1.0",
    CAP + "with-defaults:1.0?basic-mode=explicit&also-supported=report-all,report-all-tagged,trim",
    CAP + "notification:1.0",
    CAP + "interleave:1.0",
)
YANGLIB_REVISION = "2019-01-04"


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    revision: str | None
    namespace: str
    prefix: str
    features: tuple[str, ...]
    filepath: str | None

    @property
    def capability(self) -> str:
        uri = f"{self.namespace}?module={self.name}"
        if self.revision:
            uri += f"&revision={self.revision}"
        if self.features:
            uri += "&features=" + ",".join(self.features)
        return uri


class Library:
    """The server's module set, built once from a libyang context."""

    def __init__(self, ctx: libyang.Context | None = None, modules=MODULES):
        self.ctx = ctx if ctx is not None else default_context()
        infos = []
        for name, features in modules:
            mod = self.ctx.get_module(name)
            rev = libyang.util.c2str(mod.cdata.revision) if mod.cdata.revision else None
            infos.append(
                ModuleInfo(
                    name=name,
                    revision=rev,
                    namespace=libyang.util.c2str(mod.cdata.ns),
                    prefix=mod.prefix(),
                    features=tuple(features),
                    filepath=mod.filepath(),
                )
            )
        self.modules: tuple[ModuleInfo, ...] = tuple(sorted(infos, key=lambda m: m.name))
        self.by_name = {m.name: m for m in self.modules}
        self.by_ns = {m.namespace: m for m in self.modules}
        digest = hashlib.sha256(
            "\n".join(m.capability for m in self.modules).encode()
        ).hexdigest()
        self.content_id = digest[:16]

    # -- hello -----------------------------------------------------------------------
    def capabilities(self) -> list[str]:
        caps = list(PROTOCOL_CAPABILITIES)
        caps.append(CAP + f"yang-library:1.0?revision={YANGLIB_REVISION}&module-set-id={self.content_id}")
        caps.append(CAP + f"yang-library:1.1?revision={YANGLIB_REVISION}&content-id={self.content_id}")
        caps.extend(m.capability for m in self.modules)
        return caps

    def ns_of(self, module: str) -> str | None:
        m = self.by_name.get(module)
        if m is not None:
            return m.namespace
        try:
            return libyang.util.c2str(self.ctx.get_module(module).cdata.ns)
        except Exception:  # noqa: BLE001 - unknown module: no namespace
            return None

    # -- get-schema ------------------------------------------------------------------
    def schema_text(self, identifier: str, version: str | None, fmt: str) -> str | None:
        m = self.by_name.get(identifier)
        if m is None or (version and version != (m.revision or "")):
            return None
        if fmt == "yang" and m.filepath and Path(m.filepath).is_file():
            return Path(m.filepath).read_text(encoding="utf-8")
        return self.ctx.get_module(identifier).print_mem(fmt)

    # -- state data ------------------------------------------------------------------
    def yang_library(self) -> list[etree._Element]:
        """<yang-library> (RFC 8525) and <modules-state> (RFC 7895, deprecated)."""
        lib = etree.Element(q(YANGLIB_NS, "yang-library"), nsmap={None: YANGLIB_NS, "ds": DS_NS})
        ms = etree.SubElement(lib, q(YANGLIB_NS, "module-set"))
        etree.SubElement(ms, q(YANGLIB_NS, "name")).text = "complete"
        for m in self.modules:
            mel = etree.SubElement(ms, q(YANGLIB_NS, "module"))
            etree.SubElement(mel, q(YANGLIB_NS, "name")).text = m.name
            if m.revision:
                etree.SubElement(mel, q(YANGLIB_NS, "revision")).text = m.revision
            etree.SubElement(mel, q(YANGLIB_NS, "namespace")).text = m.namespace
            for f in m.features:
                etree.SubElement(mel, q(YANGLIB_NS, "feature")).text = f
        sc = etree.SubElement(lib, q(YANGLIB_NS, "schema"))
        etree.SubElement(sc, q(YANGLIB_NS, "name")).text = "complete"
        etree.SubElement(sc, q(YANGLIB_NS, "module-set")).text = "complete"
        for ds in ("running", "candidate", "operational"):
            d = etree.SubElement(lib, q(YANGLIB_NS, "datastore"))
            etree.SubElement(d, q(YANGLIB_NS, "name")).text = f"ds:{ds}"
            etree.SubElement(d, q(YANGLIB_NS, "schema")).text = "complete"
        etree.SubElement(lib, q(YANGLIB_NS, "content-id")).text = self.content_id

        st = etree.Element(q(YANGLIB_NS, "modules-state"), nsmap={None: YANGLIB_NS})
        etree.SubElement(st, q(YANGLIB_NS, "module-set-id")).text = self.content_id
        for m in self.modules:
            mel = etree.SubElement(st, q(YANGLIB_NS, "module"))
            etree.SubElement(mel, q(YANGLIB_NS, "name")).text = m.name
            etree.SubElement(mel, q(YANGLIB_NS, "revision")).text = m.revision or ""
            etree.SubElement(mel, q(YANGLIB_NS, "namespace")).text = m.namespace
            for f in m.features:
                etree.SubElement(mel, q(YANGLIB_NS, "feature")).text = f
            etree.SubElement(mel, q(YANGLIB_NS, "conformance-type")).text = "implement"
        return [lib, st]

    def monitoring_schemas(self, parent: etree._Element) -> None:
        schemas = etree.SubElement(parent, q(MON_NS, "schemas"))
        for m in self.modules:
            for fmt in ("yang", "yin"):
                s = etree.SubElement(schemas, q(MON_NS, "schema"))
                etree.SubElement(s, q(MON_NS, "identifier")).text = m.name
                etree.SubElement(s, q(MON_NS, "version")).text = m.revision or ""
                etree.SubElement(s, q(MON_NS, "format")).text = fmt
                etree.SubElement(s, q(MON_NS, "namespace")).text = m.namespace
                etree.SubElement(s, q(MON_NS, "location")).text = "NETCONF"


