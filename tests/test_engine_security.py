"""The secured test engine's parts without Java (``devtools/engine/security.py`` and the
security bits of the launcher): its switch, the throwaway CA and certificates, the users'
bcrypt hashes, the plugin's files, the nodes' security settings and the plugin's jars. The
engine itself: tests/integration/test_security.py."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from devtools.engine import EngineHome, Settings, cache, kinds, nodes, security
from devtools.engine.nodes import Node
from devtools.engine.settings import SECURITY_ENV, security_enabled


@pytest.mark.parametrize(
    ("value", "on"), [(None, False), ("", False), ("0", False), ("1", True), ("on", True)]
)
def test_security_switch(value: str | None, on: bool) -> None:
    assert security_enabled(value) is on
    env = {} if value is None else {SECURITY_ENV: value}
    assert Settings.from_env(env).security is on


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificates_chain_to_the_throwaway_ca(tmp_path: Path) -> None:
    security.make_certificates(tmp_path)
    ca, node, admin = (load(tmp_path / f"{n}.pem") for n in ("ca", "node", "admin"))
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for leaf in (node, admin):
        assert leaf.issuer == ca.subject
        public = ca.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        assert leaf.signature_hash_algorithm is not None
        public.verify(
            leaf.signature,
            leaf.tbs_certificate_bytes,
            padding.PKCS1v15(),
            leaf.signature_hash_algorithm,
        )
    assert node.subject.rfc4514_string() == security.NODE_DN
    assert admin.subject.rfc4514_string() == security.ADMIN_DN
    names = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    usage = node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usage)
    key_pem = (tmp_path / "node-key.pem").read_bytes()
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, as the plugin wants
    assert serialization.load_pem_private_key(key_pem, None) is not None
    assert (tmp_path / "node-key.pem").stat().st_mode & 0o077 == 0


def test_users_have_random_passwords_and_bcrypt_hashes(tmp_path: Path) -> None:
    first = security.make_users(tmp_path)
    assert set(first) == {security.ADMIN_USER, security.RUN_USER, security.NO_ALIAS_USER}
    assert security.make_users(tmp_path) != first  # new ones at each start
    again = json.loads((tmp_path / "users.json").read_text())
    files = security.plugin_config(again)
    users = json.loads(files["internal_users.yml"])  # JSON is YAML
    for user, password in again.items():
        assert bcrypt.checkpw(password.encode(), users[user]["hash"].encode())
        assert password not in "".join(files.values())
    assert (tmp_path / "users.json").stat().st_mode & 0o077 == 0


def test_the_roles_and_their_mapping() -> None:
    files = security.plugin_config({u: "pw-" + u for u in ("admin", "reindexer", "noalias")})
    roles = json.loads(files["roles.yml"])
    mapping = json.loads(files["roles_mapping.yml"])
    assert mapping["all_access"]["users"] == [security.ADMIN_USER]
    assert mapping[security.RUN_ROLE]["users"] == [security.RUN_USER]
    assert mapping[security.NO_ALIAS_ROLE]["users"] == [security.NO_ALIAS_USER]

    def index_actions(role: str) -> set[str]:
        return {
            action
            for block in roles[role]["index_permissions"]
            if block["index_patterns"] == list(security.TEST_INDEX_PATTERNS)
            for action in block["allowed_actions"]
        }

    assert "indices:admin/aliases" in index_actions(security.RUN_ROLE)
    assert index_actions(security.RUN_ROLE) - index_actions(security.NO_ALIAS_ROLE) == {
        "indices:admin/aliases"
    }
    granted = [
        a for b in roles[security.RUN_ROLE]["index_permissions"] for a in b["allowed_actions"]
    ]
    assert "*" not in granted and "indices:*" not in granted  # no blanket grant
    config = json.loads(files["config.yml"])["config"]["dynamic"]
    assert config["http"]["anonymous_auth_enabled"] is False


def test_secured_nodes_get_tls_and_the_plugins_files(tmp_path: Path) -> None:
    engine_home = tmp_path / "engine"
    security.prepare(engine_home)
    node = Node("node-1", 9200, 9300, scheme="https")
    assert node.url == "https://127.0.0.1:9200"
    nodes.write_node_config(node, tmp_path / "n1", [node], engine_home)
    config = tmp_path / "n1" / "config"
    yml = (config / "opensearch.yml").read_text()
    assert "plugins.security.ssl.http.enabled: true" in yml
    assert "plugins.security.ssl.transport.pemcert_filepath: certs/node.pem" in yml
    assert f'plugins.security.authcz.admin_dn: ["{security.ADMIN_DN}"]' in yml
    assert "plugins.security.allow_default_init_securityindex: true" in yml
    for name in ("ca.pem", "node.pem", "node-key.pem"):
        assert (config / "certs" / name).is_file()
    assert not (config / "certs" / "ca-key.pem").exists()  # the CA's key stays home
    assert (config / "opensearch-security" / "internal_users.yml").is_file()
    assert config.stat().st_mode & 0o077 == 0

    plain = Node("node-1", 9200, 9300)
    nodes.write_node_config(plain, tmp_path / "n2", [plain])
    assert "plugins.security" not in (tmp_path / "n2" / "config" / "opensearch.yml").read_text()


def test_an_unsecured_home_has_no_access_and_no_users(tmp_path: Path) -> None:
    home = EngineHome(Settings(home=tmp_path / "home", cache=tmp_path / "cache"))
    assert not home.secured()
    assert home.access() is None
    assert home.users() == {}


def test_the_plugins_jars_less_those_the_engine_has(tmp_path: Path) -> None:
    lib, plugin = tmp_path / "lib", tmp_path / "plugin"
    lib.mkdir()
    plugin.mkdir()
    for name in ("netty-codec-4.1.135.Final.jar", "opensearch-rest-client-2.19.6.jar"):
        (lib / name).touch()
    for name in (
        "netty-codec-4.1.125.Final.jar",
        "opensearch-rest-client-2.19.4.jar",
        "opensearch-security-2.19.4.0.jar",
        "guava-33.4.0-jre.jar",
    ):
        (plugin / name).touch()
    assert [p.name for p in cache.duplicated_jars(plugin, lib)] == [
        "netty-codec-4.1.125.Final.jar",
        "opensearch-rest-client-2.19.4.jar",
    ]
    assert cache.jar_artifact("guava-33.4.0-jre.jar") == "guava"


def test_the_pom_has_the_security_profile() -> None:
    pom = kinds.source_dir(Settings()) / "pom.xml"
    version = cache.pom_property(pom, "opensearch-security.version")
    assert version is not None and version.startswith("2.19.")
    assert "<id>security</id>" in pom.read_text()
