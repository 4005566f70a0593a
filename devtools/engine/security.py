"""A secured engine home: the OpenSearch security plugin with TLS on transport and HTTP.

Made at each fresh start of a home with ``Settings(security=True)``
(``REINDEX_FSM_ENGINE_SECURITY=1``), in ``<home>/security/``:

* a throwaway CA (``ca.pem``), one node certificate for every node (``node.pem``,
  ``node-key.pem``: ``CN=node``, 127.0.0.1 and localhost as subject alternative names) and
  the admin client certificate of the plugin's ``admin_dn`` (``admin.pem``, ``admin-key.pem``);
* ``users.json``: the internal users and their passwords, random for each start (the
  engine stores only their bcrypt hashes), mode 0600;

and in each node's ``config/``: the certificates under ``certs/`` and the plugin's
configuration under ``opensearch-security/`` (``internal_users.yml``, ``roles.yml``,
``roles_mapping.yml``, ``config.yml`` ...), which the first node loads into the security
index at start (``plugins.security.allow_default_init_securityindex``).

The users: ``admin`` (``all_access``: tests set up and clean up with it), ``reindexer``
(the role ``reindex_fsm``: the least privilege a run needs on ``itest-*`` indices and the
lease index, documented in the README's Privileges section) and ``noalias`` (the same role
less ``indices:admin/aliases``). The ``cryptography`` and ``bcrypt`` packages are needed
only here (the test extra has them).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .settings import LauncherError

NODE_DN = "CN=node,OU=engine,O=reindex-fsm"
ADMIN_DN = "CN=admin,OU=engine,O=reindex-fsm"
ADMIN_USER = "admin"
RUN_USER = "reindexer"
NO_ALIAS_USER = "noalias"
RUN_ROLE = "reindex_fsm"
NO_ALIAS_ROLE = "reindex_fsm_without_aliases"
# The indices the test roles cover: every integration test's names start with "itest-".
TEST_INDEX_PATTERNS = ("itest-*",)
LEASE_INDEX = "reindex-fsm-leases"  # reindex_fsm.engine.base.LEASE_INDEX

# What a run needs, by the requests it makes (see the README's Privileges section).
RUN_CLUSTER_PERMISSIONS = (
    "cluster:monitor/main",  # GET /
    "cluster:monitor/health",
    "cluster:monitor/state",  # GET _cluster/settings
    "cluster:monitor/nodes/info",  # _cat/plugins
    "cluster:monitor/nodes/stats",  # the disk check
    "cluster:monitor/tasks/lists",  # list reindex tasks
    "cluster:monitor/task/get",
    "cluster:admin/tasks/cancel",
    "cluster:admin/reindex/rethrottle",
    "indices:data/write/reindex",
    "indices:data/write/bulk",
    "indices:data/read/mget",
    "indices:data/read/scroll",
    "indices:data/read/scroll/clear",
    "indices:data/read/point_in_time/delete",
    # the index templates matching the target's name (composable and legacy), at plan time
    "indices:admin/index_template/get",
    "indices:admin/template/get",
)
EVERY_INDEX_PERMISSIONS = ("indices:admin/aliases/get",)
SOURCE_AND_TARGET_PERMISSIONS = (
    "indices:admin/get",
    "indices:admin/mappings/get",
    "indices:monitor/settings/get",
    "indices:admin/aliases/get",
    "indices:monitor/stats",
    "indices:data/read/search",
    "indices:admin/shards/search_shards",  # a sliced _reindex
    "indices:data/read/mget*",  # and its shard-level [shard]
    "indices:data/read/point_in_time/create",
    "indices:admin/block/add",  # the write block of the source
    "indices:admin/settings/update",  # lift the block; the target's final settings
    "indices:admin/create",
    "indices:admin/delete",  # rollback, cleanup
    "indices:admin/refresh*",  # and its shard-level [s]
    "indices:data/write/index",
    "indices:data/write/bulk*",
    "indices:admin/aliases",  # the swap
)
LEASE_PERMISSIONS = (
    "indices:admin/create",
    "indices:admin/mappings/get",
    "indices:monitor/settings/get",
    "indices:data/read/get",
    "indices:data/read/search",
    "indices:data/write/index",
    "indices:data/write/update",
    "indices:data/write/delete",
    "indices:data/write/bulk*",
    "indices:admin/refresh*",
)


@dataclass(frozen=True)
class Access:
    """How a client reaches a secured engine: the CA to verify it with and a user."""

    ca: Path
    user: str
    password: str


def security_dir(home: Path) -> Path:
    return home / "security"


def users(home: Path) -> dict[str, str]:
    """user -> password of the secured engine in ``home`` ({} when there is none)."""
    path = security_dir(home) / "users.json"
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text()))


def admin_access(home: Path) -> Access | None:
    """The admin's access to the secured engine in ``home``; None if it is not secured."""
    known = users(home)
    if ADMIN_USER not in known:
        return None
    return Access(security_dir(home) / "ca.pem", ADMIN_USER, known[ADMIN_USER])


# -- certificates ------------------------------------------------------------------------------


def _imports() -> Any:
    try:
        import bcrypt
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as err:
        raise LauncherError(
            f"a secured engine needs the cryptography and bcrypt packages ({err}): "
            "pip install -e '.[test]'"
        ) from None
    return bcrypt, x509, hashes, serialization, rsa, ExtendedKeyUsageOID, NameOID


def _name(x509: Any, name_oid: Any, dn: str) -> Any:
    """An x509 Name from an RFC 4514 string such as ``CN=node,OU=engine,O=reindex-fsm``."""
    oids = {"CN": name_oid.COMMON_NAME, "OU": name_oid.ORGANIZATIONAL_UNIT_NAME}
    oids["O"] = name_oid.ORGANIZATION_NAME
    parts = [p.split("=", 1) for p in dn.split(",")]
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in reversed(parts)])


def make_certificates(out: Path) -> None:
    """ca.pem, node.pem + node-key.pem, admin.pem + admin-key.pem in ``out`` (keys as
    unencrypted PKCS#8, which the plugin reads), valid for 30 days from an hour ago."""
    _bcrypt, x509, hashes, serialization, rsa, eku, name_oid = _imports()
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    until = now + datetime.timedelta(days=30)

    def key() -> Any:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write_key(path: Path, private: Any) -> None:
        path.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)

    ca_key = key()
    ca_name = _name(x509, name_oid, "CN=reindex-fsm test CA,OU=engine,O=reindex-fsm")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    write_key(out / "ca-key.pem", ca_key)

    def leaf(dn: str, server: bool) -> tuple[Any, Any]:
        private = key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(x509, name_oid, dn))
            .issuer_name(ca_name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [eku.SERVER_AUTH, eku.CLIENT_AUTH] if server else [eku.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if server:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), private

    for stem, dn, server in (("node", NODE_DN, True), ("admin", ADMIN_DN, False)):
        cert, private = leaf(dn, server)
        (out / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(out / f"{stem}-key.pem", private)


# -- users, roles and the plugin's configuration ---------------------------------------------


def make_users(out: Path) -> dict[str, str]:
    """New random passwords for the test users, kept in ``out/users.json`` (mode 0600)."""
    passwords = {u: secrets.token_urlsafe(18) for u in (ADMIN_USER, RUN_USER, NO_ALIAS_USER)}
    path = out / "users.json"
    path.write_text(json.dumps(passwords, indent=2) + "\n")
    path.chmod(0o600)
    return passwords


def _yaml(value: Any) -> str:
    """JSON is YAML: the plugin's files written without a YAML library."""
    return json.dumps(value, indent=2) + "\n"


def _meta(kind: str) -> dict[str, Any]:
    return {"_meta": {"type": kind, "config_version": 2}}


def run_role(without: tuple[str, ...] = ()) -> dict[str, Any]:
    """The least-privilege role of a run on the test indices (less ``without``)."""
    index_actions = [a for a in SOURCE_AND_TARGET_PERMISSIONS if a not in without]
    return {
        "cluster_permissions": list(RUN_CLUSTER_PERMISSIONS),
        "index_permissions": [
            # A target name must be no alias anywhere: GET _alias/<name> reads every index.
            {"index_patterns": ["*"], "allowed_actions": list(EVERY_INDEX_PERMISSIONS)},
            {"index_patterns": list(TEST_INDEX_PATTERNS), "allowed_actions": index_actions},
            {"index_patterns": [LEASE_INDEX], "allowed_actions": list(LEASE_PERMISSIONS)},
        ],
    }


def plugin_config(passwords: Mapping[str, str]) -> dict[str, str]:
    """file name -> text of ``config/opensearch-security/``."""
    bcrypt = _imports()[0]

    def hashed(password: str) -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()

    basic = {
        "description": "HTTP basic auth against the internal users",
        "http_enabled": True,
        "transport_enabled": True,
        "order": 0,
        "http_authenticator": {"type": "basic", "challenge": True},
        "authentication_backend": {"type": "intern"},
    }
    config = {
        **_meta("config"),
        "config": {
            "dynamic": {
                "http": {"anonymous_auth_enabled": False},
                "authc": {"basic_internal_auth_domain": basic},
            }
        },
    }
    internal_users = {**_meta("internalusers")}
    internal_users[ADMIN_USER] = {"hash": hashed(passwords[ADMIN_USER]), "reserved": True}
    internal_users[RUN_USER] = {"hash": hashed(passwords[RUN_USER])}
    internal_users[NO_ALIAS_USER] = {"hash": hashed(passwords[NO_ALIAS_USER])}
    roles = {
        **_meta("roles"),
        RUN_ROLE: run_role(),
        NO_ALIAS_ROLE: run_role(without=("indices:admin/aliases",)),
    }
    mapping = {
        **_meta("rolesmapping"),
        "all_access": {"reserved": False, "users": [ADMIN_USER]},
        RUN_ROLE: {"users": [RUN_USER]},
        NO_ALIAS_ROLE: {"users": [NO_ALIAS_USER]},
    }
    return {
        "config.yml": _yaml(config),
        "internal_users.yml": _yaml(internal_users),
        "roles.yml": _yaml(roles),
        "roles_mapping.yml": _yaml(mapping),
        "action_groups.yml": _yaml(_meta("actiongroups")),
        "tenants.yml": _yaml(_meta("tenants")),
        "nodes_dn.yml": _yaml(_meta("nodesdn")),
        "allowlist.yml": _yaml({**_meta("allowlist"), "config": {"enabled": False}}),
        "audit.yml": _yaml({**_meta("audit"), "config": {"enabled": False}}),
    }


def prepare(home: Path) -> None:
    """New certificates, passwords and plugin configuration in ``<home>/security``."""
    out = security_dir(home)
    out.mkdir(parents=True, exist_ok=True)
    make_certificates(out)
    passwords = make_users(out)
    conf = out / "opensearch-security"
    conf.mkdir(exist_ok=True)
    for name, text in plugin_config(passwords).items():
        (conf / name).write_text(text)


def opensearch_yml_lines() -> list[str]:
    """The security lines of every node's ``opensearch.yml`` (paths under ``config/``)."""
    lines = []
    for layer in ("transport", "http"):
        lines += [
            f"plugins.security.ssl.{layer}.pemcert_filepath: certs/node.pem",
            f"plugins.security.ssl.{layer}.pemkey_filepath: certs/node-key.pem",
            f"plugins.security.ssl.{layer}.pemtrustedcas_filepath: certs/ca.pem",
        ]
    return [
        *lines,
        "plugins.security.ssl.http.enabled: true",
        "plugins.security.ssl.transport.enforce_hostname_verification: false",
        "plugins.security.allow_default_init_securityindex: true",
        f'plugins.security.authcz.admin_dn: ["{ADMIN_DN}"]',
        f'plugins.security.nodes_dn: ["{NODE_DN}"]',
        "plugins.security.audit.type: noop",
        'plugins.security.restapi.roles_enabled: ["all_access"]',
        "plugins.security.system_indices.enabled: true",
        "plugins.security.check_snapshot_restore_write_privileges: true",
    ]


def write_node_files(home: Path, node_home: Path) -> None:
    """Copy the certificates and the plugin's configuration into one node's ``config/``."""
    src = security_dir(home)
    if not (src / "users.json").is_file():
        raise LauncherError(f"no security material in {src}: start the engine again")
    certs = node_home / "config" / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    for name in ("ca.pem", "node.pem", "node-key.pem"):
        (certs / name).write_bytes((src / name).read_bytes())
    (certs / "node-key.pem").chmod(0o600)
    conf = node_home / "config" / "opensearch-security"
    conf.mkdir(parents=True, exist_ok=True)
    for path in (src / "opensearch-security").iterdir():
        (conf / path.name).write_text(path.read_text())
    # The plugin warns at start about any of these that others may read.
    config = node_home / "config"
    for path in [config, *config.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)


def ssl_context(ca: Path) -> ssl.SSLContext:
    """A client context that trusts only the engine's CA (hostname checked: 127.0.0.1)."""
    return ssl.create_default_context(cafile=os.fspath(ca))
