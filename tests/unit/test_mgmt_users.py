"""Users from the running configuration: crypt(3) hashes, SSH keys, roles, bootstrap keys."""

from __future__ import annotations

import base64
import io
import os
import warnings

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from appliance.mgmt import users as users_mod
from appliance.mgmt.users import UserDb, crypt_hash, load_bootstrap_keys, parse_key_line, sha_crypt

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt as _crypt
    except ImportError:  # Python 3.13+
        _crypt = None


def _ed25519() -> paramiko.PKey:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem.decode()))


def _line(key: paramiko.PKey, comment: str = "ops@example") -> str:
    return f"{key.get_name()} {key.get_base64()} {comment}"


H6 = sha_crypt("correct horse", "$6$saltsaltsalt$")
H5 = sha_crypt("battery staple", "$5$rounds=6000$pepper$")


def config(*users: dict) -> dict:
    return {"fcr-system:system": {"hostname": "r1", "users": {"user": list(users)}}}


@pytest.fixture(scope="module")
def keys() -> tuple[paramiko.PKey, paramiko.PKey]:
    return _ed25519(), _ed25519()


@pytest.fixture(scope="module")
def db(keys) -> UserDb:
    k1, _ = keys
    return UserDb.from_config(config(
        {"name": "alice", "password-hash": H6, "role": "admin",
         "ssh-keys": {"ssh-key": [{"name": "laptop", "key": _line(k1)}]}},
        {"name": "bob", "password-hash": H5, "role": "operator"},
        {"name": "carol"},  # no password, no key, default role
    ))


# -- crypt(3) ---------------------------------------------------------------------------

@pytest.mark.skipif(_crypt is None, reason="no crypt module to compare with")
@pytest.mark.parametrize("setting", ["$6$abcdefgh", "$5$abcdefgh", "$6$rounds=1000$0123456789abcdefXYZ",
                                     "$5$rounds=10000$x", "$6$$"])
@pytest.mark.parametrize("password", ["", "a", "secret", "x" * 100, "pässwörd"])
def test_sha_crypt_matches_libcrypt(setting: str, password: str) -> None:
    assert sha_crypt(password, setting) == _crypt.crypt(password, setting)


def test_sha_crypt_known_vectors() -> None:
    # from the SHA-crypt specification's test vectors
    assert sha_crypt("Hello world!", "$5$saltstring") == \
        "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
    assert sha_crypt("Hello world!", "$6$saltstring") == (
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")
    assert sha_crypt("Hello world!", "$6$rounds=10000$saltstringsaltstring") == (
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/"
        "YTBmSK6H9qs/y3RnOaw5v.")
    assert sha_crypt("x", "$1$abc$") is None


def test_crypt_backend_named() -> None:
    assert users_mod.CRYPT_BACKEND in ("crypt-module", "libcrypt-ctypes", "pure-python-sha-crypt")


@pytest.mark.parametrize("fmt", ["$6$", "$5$"])
def test_password_formats(fmt: str) -> None:
    h = crypt_hash("pw-" + fmt, fmt + "NaCl4fcr$")
    d = UserDb.from_config(config({"name": "u", "password-hash": h, "role": "operator"}))
    assert d.check_password("u", "pw-" + fmt)
    assert not d.check_password("u", "pw-" + fmt + "x")


def test_yescrypt_if_supported() -> None:
    h = crypt_hash("yes", "$y$j9T$abcdefghijklmnop$")
    if h is None:
        pytest.skip("the platform's crypt has no yescrypt")
    assert h.startswith("$y$j9T$abcdefghijklmnop$")
    d = UserDb.from_config(config({"name": "y", "password-hash": h}))
    assert d.check_password("y", "yes")
    assert not d.check_password("y", "no")


def test_check_password(db: UserDb) -> None:
    assert db.check_password("alice", "correct horse")
    assert db.check_password("bob", "battery staple")
    assert not db.check_password("alice", "battery staple")  # wrong password
    assert not db.check_password("alice", "")
    assert not db.check_password("alice", "correct horse\x00")
    assert not db.check_password("mallory", "correct horse")  # unknown user
    assert not db.check_password("carol", "")  # no password-hash: no password login
    assert not db.check_password("carol", "anything")


def test_unknown_method_is_no_login() -> None:
    d = UserDb.from_config(config({"name": "u", "password-hash": "$9$nope$abcdef"}))
    assert not d.check_password("u", "abcdef")
    assert not d.check_password("u", "")


# -- roles ------------------------------------------------------------------------------

def test_roles(db: UserDb) -> None:
    assert db.role("alice") == "admin"
    assert db.role("bob") == "operator"
    assert db.role("carol") == "viewer"  # the model's default
    assert db.role("mallory") is None
    assert db.names() == ["alice", "bob", "carol"]


# -- public keys ------------------------------------------------------------------------

def test_public_key_match_and_mismatch(db: UserDb, keys) -> None:
    k1, k2 = keys
    assert db.check_public_key("alice", k1)
    assert db.check_public_key("alice", (k1.get_name(), k1.get_base64()))
    assert not db.check_public_key("alice", k2)  # another key
    assert not db.check_public_key("bob", k1)  # someone else's key
    assert not db.check_public_key("mallory", k1)
    assert not db.check_public_key("alice", ("ssh-rsa", k1.get_base64()))  # type and blob disagree
    assert not db.check_public_key("alice", ("ssh-ed25519", "not base64!"))
    assert db.authorized_keys("alice") == [_line(k1)]
    assert db.authorized_keys("bob") == []


def test_parse_key_line(keys) -> None:
    k1, _ = keys
    assert parse_key_line(_line(k1)) == ("ssh-ed25519", base64.b64decode(k1.get_base64()))
    assert parse_key_line('from="10.0.0.0/8",no-pty ' + _line(k1))[0] == "ssh-ed25519"
    assert parse_key_line("ssh-ed25519") is None
    assert parse_key_line("ssh-rsa " + k1.get_base64()) is None  # blob says ed25519
    assert parse_key_line("# comment") is None


# -- no users, bootstrap ----------------------------------------------------------------

def test_no_users_no_login(keys) -> None:
    for cfg in ({}, {"fcr-system:system": {"hostname": "r1"}}, config()):
        d = UserDb.from_config(cfg)
        assert len(d) == 0
        for name in ("admin", "root", "fcr", ""):
            for pw in ("", "admin", "fcr", "password"):
                assert not d.check_password(name, pw)
            assert not d.check_public_key(name, keys[0])
            assert d.role(name) is None


def test_bootstrap_keys_only_without_admin(keys) -> None:
    k1, k2 = keys
    boot = [_line(k2, "first-boot"), "garbage line"]
    d = UserDb.from_config({}, bootstrap_keys=boot)
    assert d.role("admin") == "admin"
    assert d.check_public_key("admin", k2)
    assert not d.check_public_key("admin", k1)
    assert not d.check_password("admin", "")
    assert d.user("admin").bootstrap
    # a configured viewer does not switch the bootstrap off ...
    d = UserDb.from_config(config({"name": "v", "password-hash": H6}), bootstrap_keys=boot)
    assert d.check_public_key("admin", k2)
    # ... a configured admin does, and so does a configured user named admin
    d = UserDb.from_config(config({"name": "alice", "password-hash": H6, "role": "admin"}), bootstrap_keys=boot)
    assert "admin" not in d and not d.check_public_key("admin", k2)
    d = UserDb.from_config(config({"name": "admin", "role": "viewer"}), bootstrap_keys=boot)
    assert d.role("admin") == "viewer" and not d.check_public_key("admin", k2)


def test_load_bootstrap_keys(tmp_path, keys) -> None:
    f = tmp_path / "authorized_keys"
    assert load_bootstrap_keys(f) == []  # missing
    f.write_text(f"# first boot\n\n{_line(keys[0])}\n")
    os.chmod(f, 0o600)
    assert load_bootstrap_keys(f) == [_line(keys[0])]
    os.chmod(f, 0o622)  # writable by others: not a credential
    assert load_bootstrap_keys(f) == []
