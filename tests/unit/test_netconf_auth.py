"""fcr-mgmtd's NETCONF wiring without an engine: users from the running configuration
(password and public key), the first-boot authorized_keys path, roles on every operation,
redacted reads, first-start seeding, and the engine-state poller behind notifications."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.transport.errors import AuthenticationError

from appliance.mgmt.daemon import Users, hash_password, seed_startup
from appliance.mgmt.plane import ManagementPlane
from appliance.mgmt.users import UserDb
from appliance.netconf.server import EnginePoller, NetconfServer

pytestmark = pytest.mark.timeout(60)

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
BGP = "urn:fcr:yang:fcr-bgp"
SYS = "urn:fcr:yang:fcr-system"
PASSWORDS = {"admin": "pw-admin", "oper": "pw-oper", "view": "pw-view"}
ROLES = {"admin": "admin", "oper": "operator", "view": "viewer"}
NETWORK = f"""<config xmlns="{NC}"><bgp xmlns="{BGP}"><networks><network><prefix>203.0.113.0/24</prefix>
</network></networks></bgp></config>"""


def keypair(tmp_path, name):
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return str(path), pub.decode() + " test@fcr"


def config(users=True, keys=None):
    cfg = {"fcr-system:system": {"hostname": "t"},
           "fcr-bgp:bgp": {"global": {"as": 65001, "router-id": "192.0.2.1"}}}
    if users:
        entries = []
        for name, pw in sorted(PASSWORDS.items()):
            u = {"name": name, "role": ROLES[name], "password-hash": hash_password(pw)}
            if keys and name in keys:
                u["ssh-keys"] = {"ssh-key": [{"name": "k1", "key": keys[name]}]}
            entries.append(u)
        cfg["fcr-system:system"]["users"] = {"user": entries}
    return cfg


class Env:
    def __init__(self, tmp_path, cfg, bootstrap_keys_path=None):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        state = tmp_path / "state"
        state.mkdir()
        (state / "startup.json").write_text(json.dumps(cfg))

        async def setup():
            plane = ManagementPlane(state, None)
            await plane.start()
            users = Users(plane, bootstrap_keys_path)
            server = NetconfServer(plane, host="127.0.0.1", port=0, host_key_path=tmp_path / "hk",
                                   authenticate=users.check_password, authorized_keys=users.authorized_keys,
                                   role_of=users.role)
            await server.start()
            return plane, server

        self.plane, self.server = self.run(setup())
        self.managers = []

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def connect(self, user, password=None, key=None):
        kw = {"key_filename": key} if key else {"password": PASSWORDS[user] if password is None else password}
        m = manager.connect(host="127.0.0.1", port=self.server.port, username=user, hostkey_verify=False,
                            allow_agent=False, look_for_keys=False, timeout=20, **kw)
        self.managers.append(m)
        return m

    def close(self):
        for m in self.managers:
            if m.connected:
                m.close_session()
        self.run(self.server.stop())
        self.run(self.plane.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path, config())
    yield e
    e.close()


def test_password_auth_from_running(env):
    with env.connect("admin") as m:
        assert "192.0.2.1" in m.get_config("running").data_xml
    with pytest.raises(AuthenticationError):
        env.connect("admin", password="wrong")
    with pytest.raises(AuthenticationError):
        env.connect("nobody", password="x")


def test_users_follow_commits(env):
    with env.connect("admin") as m:
        m.edit_config(target="candidate", config=f"""<config xmlns="{NC}"><system xmlns="{SYS}"><users>
            <user><name>new</name><role>viewer</role><password-hash>{hash_password("pw-new")}</password-hash>
            </user></users></system></config>""")
        with pytest.raises(AuthenticationError):
            env.connect("new", password="pw-new")  # candidate only: not yet
        m.commit()
    with env.connect("new", password="pw-new") as m2:
        with pytest.raises(RPCError) as ei:
            m2.edit_config(target="candidate", config=NETWORK)
        assert ei.value.tag == "access-denied"


def test_public_key_auth(tmp_path):
    key, pub = keypair(tmp_path, "oper_key")
    e = Env(tmp_path, config(keys={"oper": pub}))
    try:
        with e.connect("oper", key=key) as m:
            m.edit_config(target="candidate", config=NETWORK)  # operator may
        with pytest.raises(AuthenticationError):
            e.connect("view", key=key)
    finally:
        e.close()


def test_first_boot_authorized_keys(tmp_path):
    key, pub = keypair(tmp_path, "boot_key")
    keys = tmp_path / "authorized_keys"
    keys.write_text(pub + "\n")
    os.chmod(keys, 0o600)
    e = Env(tmp_path, config(users=False), bootstrap_keys_path=str(keys))
    try:
        with e.connect("admin", key=key) as m:
            # the bootstrap admin is an admin: it configures the first real user
            m.edit_config(target="candidate", config=f"""<config xmlns="{NC}"><system xmlns="{SYS}"><users>
                <user><name>admin</name><role>admin</role>
                <password-hash>{hash_password("pw-admin")}</password-hash></user></users></system></config>""")
            m.commit()
        # from now on the file is ignored: the configured admin logs in with its password
        with pytest.raises(AuthenticationError):
            e.connect("admin", key=key)
        with e.connect("admin") as m:
            assert "password-hash" in m.get_config("running").data_xml
    finally:
        e.close()


def test_no_users_no_login(tmp_path):
    e = Env(tmp_path, config(users=False), bootstrap_keys_path=str(tmp_path / "missing"))
    try:
        with pytest.raises(AuthenticationError):
            e.connect("admin", password="")
        with pytest.raises(AuthenticationError):
            e.connect("admin", password="admin")
    finally:
        e.close()


def test_roles_on_operations(env):
    a, o, v = env.connect("admin"), env.connect("oper"), env.connect("view")
    users_edit = f"""<config xmlns="{NC}"><system xmlns="{SYS}"><users><user><name>view</name>
        <role>admin</role></user></users></system></config>"""
    for call in (lambda: v.edit_config(target="candidate", config=NETWORK), lambda: v.lock("candidate"),
                 lambda: v.commit(), lambda: v.discard_changes(), lambda: v.validate(source="candidate")):
        with pytest.raises(RPCError) as ei:
            call()
        assert ei.value.tag == "access-denied"
    with pytest.raises(RPCError) as ei:
        o.edit_config(target="candidate", config=users_edit)
    assert ei.value.tag == "access-denied"
    # replacing the whole datastore would rewrite the users too
    with pytest.raises(RPCError) as ei:
        o.edit_config(target="candidate", config=NETWORK, default_operation="replace")
    assert ei.value.tag == "access-denied"
    with pytest.raises(RPCError) as ei:
        o.copy_config(source=f"""<source xmlns="{NC}"><config><bgp xmlns="{BGP}"><global><as>65001</as>
            <router-id>192.0.2.1</router-id></global></bgp></config></source>""", target="candidate")
    assert ei.value.tag == "access-denied"
    # an admin's uncommitted user change: the operator may not commit it
    a.edit_config(target="candidate", config=users_edit)
    with pytest.raises(RPCError) as ei:
        o.commit()
    assert ei.value.tag == "access-denied"
    a.discard_changes()
    o.edit_config(target="candidate", config=NETWORK)
    o.commit()
    with pytest.raises(RPCError) as ei:
        o.kill_session(str(v.session_id))
    assert ei.value.tag == "access-denied"
    # reads: hashes for admin only
    assert "password-hash" in a.get_config("running").data_xml
    for m in (o, v):
        assert "password-hash" not in m.get_config("running").data_xml
        assert "password-hash" not in m.get().data_xml
        assert "<name>view</name>" in m.get_config("running").data_xml
    assert "203.0.113.0/24" in v.get_config("running").data_xml
    v.close_session()  # always allowed


def test_seed_startup(tmp_path):
    initial = tmp_path / "init.json"
    initial.write_text(json.dumps(config(users=False)))
    pw = seed_startup(tmp_path / "s1", initial, [])
    assert pw and len(pw) >= 12
    cfg = json.loads((tmp_path / "s1" / "startup.json").read_text())
    db = UserDb.from_config(cfg)
    assert db.role("admin") == "admin" and db.check_password("admin", pw)
    assert pw not in (tmp_path / "s1" / "startup.json").read_text()
    assert seed_startup(tmp_path / "s1", initial, []) is None  # only at first start
    _, pub = keypair(tmp_path, "k")
    assert seed_startup(tmp_path / "s2", initial, [pub]) is None
    cfg = json.loads((tmp_path / "s2" / "startup.json").read_text())
    user = cfg["fcr-system:system"]["users"]["user"][0]
    assert user["name"] == "admin" and "password-hash" not in user and user["ssh-keys"]["ssh-key"][0]["key"] == pub
    assert paramiko  # keys in authorized_keys form load in paramiko (used by the server)


def test_engine_poller_events():
    answers = [
        {"neighbors": [{"neighbor-address": "10.0.0.2", "state": "Active"}]},
        {"neighbors": [{"neighbor-address": "10.0.0.2", "state": "Established"},
                       {"neighbor-address": "10.0.0.3", "state": "Established"}]},
        RuntimeError("engine away"),
        {"neighbors": [{"neighbor-address": "10.0.0.2", "state": "Idle",
                        "last-notification-received": {"code": 6, "subcode": 2, "message": "bye"}}]},
    ]
    bfd = [{"sessions": [{"peer-address": "10.0.0.2", "state": "Down", "multihop": False}]},
           {"sessions": [{"peer-address": "10.0.0.2", "state": "Up", "multihop": False,
                          "local-discriminator": 7, "local-diagnostic": "none"}]},
           {"sessions": []}, {"sessions": []}]
    events = []

    def call(method):
        src = answers if method == "bgp.summary" else bfd
        item = src.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    p = EnginePoller(call, lambda e, d: events.append((e, d)))

    async def go():
        for _ in range(4):
            await p.step()

    asyncio.run(go())
    assert events == [
        ("bgp-neighbor-state-change", {"neighbor-address": "10.0.0.2", "previous-state": "active",
                                       "session-state": "established"}),
        ("bgp-neighbor-state-change", {"neighbor-address": "10.0.0.3", "previous-state": "idle",
                                       "session-state": "established"}),
        ("bfd-session-state-change", {"peer-address": "10.0.0.2", "multihop": False, "previous-state": "down",
                                      "local-state": "up", "local-discriminator": 7, "local-diagnostic": "none"}),
        ("bgp-neighbor-state-change", {"neighbor-address": "10.0.0.2", "previous-state": "established",
                                       "session-state": "idle",
                                       "last-error": {"direction": "received", "code": 6, "subcode": 2,
                                                      "text": "bye"}}),
    ]
