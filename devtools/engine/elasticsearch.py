"""The local Elasticsearch 7.17 test engine (``REINDEX_FSM_ENGINE_KIND=elasticsearch-7``): the
stock server of Maven Central's integ-test-zip, one JVM per node on 127.0.0.1, plain HTTP.

What it has: the server, ``x-pack-core`` (point in time, ``_security`` APIs), ``x-pack-security``
(off unless file-realm users are given), ``transport-netty4``, and the ``*-client`` modules of
``scripts/engine/elasticsearch-7/pom.xml`` (reindex with tasks, mapper-extras, parent-join,
percolator, rank-eval, matrix-stats, mustache), each laid out as a module with the jars its pom
names and a plugin descriptor written here. What it lacks (not on Maven Central for 7.17):
painless, ingest processors, analysis-common's filters and analyzers, ``dense_vector``.

The cache entry ``<cache>/elasticsearch-<version>-<key>/home`` is a stock Elasticsearch home;
each engine home gets a hard-linked copy of it in ``<home>/dist`` (a copy when the cache is on
another filesystem), because the node does not run as root: Elasticsearch refuses to, and the
cache under root's home is not readable by anyone else. The system user ``reindexfsm-es`` is
created with ``useradd`` if missing and every node JVM is started as it with ``setpriv``; its
node directory (config, data, logs, tmp) is owned by it. When the launcher itself is not root,
the node runs as the launcher's user.

The node table, ports, markers, stop and stop-node are the OpenSearch launcher's
(:class:`~devtools.engine.cluster.EngineHome`); only fetching, the config and the command line
differ. With ``users`` (file-realm users and their roles), x-pack security is on, with the file
realm and HTTP basic auth (no TLS): the health waits then authenticate as the first user.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import cache, nodes
from .cluster import START_ATTEMPTS, STOP_WAIT_S, EngineHome, Health
from .locks import file_lock
from .nodes import Node
from .settings import CLUSTER_NAME, MAX_NODES, REPO, LauncherError, Settings, initial_heap, log

ES_SRC = REPO / "scripts" / "engine" / "elasticsearch-7"
ES_USER = "reindexfsm-es"
LAYOUT = "1"  # bump when the layout below changes: a new cache entry is made


@dataclass(frozen=True)
class Module:
    """One ``*-client`` jar of Maven Central laid out as ``modules/<name>/``."""

    name: str
    artifact: str  # the jar's artifactId
    classname: str
    description: str
    jars: tuple[str, ...] = ()  # artifactIds of the other jars its pom brings in


MODULES = (
    Module(
        "reindex",
        "reindex-client",
        "org.elasticsearch.reindex.ReindexPlugin",
        "The Reindex module adds APIs to reindex from one index to another or update "
        "documents in place.",
        (
            "elasticsearch-rest-client",
            "elasticsearch-ssl-config",
            "httpclient",
            "httpcore",
            "httpasyncclient",
            "httpcore-nio",
            "commons-codec",
            "commons-logging",
        ),
    ),
    Module(
        "mapper-extras",
        "mapper-extras-client",
        "org.elasticsearch.index.mapper.MapperExtrasPlugin",
        "Adds advanced field mappers",
    ),
    Module(
        "parent-join",
        "parent-join-client",
        "org.elasticsearch.join.ParentJoinPlugin",
        "This module adds the support parent-child queries and aggregations",
    ),
    Module(
        "percolator",
        "percolator-client",
        "org.elasticsearch.percolator.PercolatorPlugin",
        "Percolator module adds capability to index queries and query these queries by "
        "specifying documents",
    ),
    Module(
        "rank-eval",
        "rank-eval-client",
        "org.elasticsearch.index.rankeval.RankEvalPlugin",
        "The Rank Eval module adds APIs to evaluate ranking quality.",
    ),
    Module(
        "aggs-matrix-stats",
        "aggs-matrix-stats-client",
        "org.elasticsearch.search.aggregations.matrix.MatrixAggregationPlugin",
        "Adds aggregations whose input are a list of numeric fields and output includes a matrix.",
    ),
    Module(
        "lang-mustache",
        "lang-mustache-client",
        "org.elasticsearch.script.mustache.MustachePlugin",
        "Mustache scripting integration for Elasticsearch",
        ("compiler",),
    ),
)

# The reindex module opens connections for reindex from a remote cluster.
REINDEX_POLICY = """\
grant {
  permission java.net.SocketPermission "*", "connect";
};

grant codeBase "${codebase.elasticsearch-rest-client}" {
  permission java.net.NetPermission "getProxySelector";
};

grant codeBase "${codebase.httpasyncclient}" {
  permission java.net.NetPermission "getProxySelector";
};
"""

LOG4J2 = """\
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
appender.header_warning.type = HeaderWarningAppender
appender.header_warning.name = header_warning
logger.deprecation.name = org.elasticsearch.deprecation
logger.deprecation.level = deprecation
logger.deprecation.appenderRef.header_warning.ref = header_warning
logger.deprecation.additivity = false
"""


# -- the cache entry -----------------------------------------------------------------------


def es_version(src: Path = ES_SRC) -> str:
    version = cache.pom_property(src / "pom.xml", "elasticsearch.version")
    if not version:
        raise LauncherError(f"cannot read elasticsearch.version from {src / 'pom.xml'}")
    return version


def dist_key(src: Path = ES_SRC) -> str:
    """The first 12 hex digits of sha256(pom.xml + the module layout)."""
    digest = hashlib.sha256((src / "pom.xml").read_bytes())
    digest.update(LAYOUT.encode())
    for module in MODULES:
        digest.update(json.dumps([module.name, module.artifact, *module.jars]).encode())
    return digest.hexdigest()[:12]


def dist_dir(settings: Settings, src: Path = ES_SRC) -> Path:
    if not (src / "pom.xml").is_file():
        raise LauncherError(f"missing {src / 'pom.xml'}")
    return settings.cache / f"elasticsearch-{es_version(src)}-{dist_key(src)}"


def descriptor(module: Module, version: str) -> str:
    """The ``plugin-descriptor.properties`` of a module (the format of the zip's own)."""
    return (
        f"description={module.description}\n"
        f"version={version}\n"
        f"name={module.name}\n"
        f"classname={module.classname}\n"
        "java.version=1.8\n"
        f"elasticsearch.version={version}\n"
        "extended.plugins=\n"
        "has.native.controller=false\n"
        "type=isolated\n"
    )


def lay_out_modules(lib: Path, home: Path, version: str) -> None:
    """Put each module's jars from ``lib`` (mvn's flat output) into ``home/modules/<name>``
    with its descriptor; a jar the server already has in ``home/lib`` is left out (a class
    twice on a module's class path is jar hell)."""
    server_jars = {p.name for p in (home / "lib").glob("*.jar")}
    found: dict[str, Path] = {}
    for jar in lib.glob("*.jar"):
        stem = jar.name[: -len(".jar")]
        artifact, _, _ = stem.rpartition("-")
        found[artifact] = jar
    for module in MODULES:
        folder = home / "modules" / module.name
        folder.mkdir(parents=True, exist_ok=True)
        for artifact in (module.artifact, *module.jars):
            wanted = found.get(artifact)
            if wanted is None:
                raise LauncherError(f"mvn did not produce {artifact}-*.jar for {module.name}")
            if wanted.name not in server_jars:
                shutil.copy(wanted, folder / wanted.name)
        (folder / "plugin-descriptor.properties").write_text(descriptor(module, version))
        if module.name == "reindex":
            (folder / "plugin-security.policy").write_text(REINDEX_POLICY)


def ensure_dist(settings: Settings, java: cache.Java, src: Path = ES_SRC) -> Path:
    """The cache entry (``<entry>/home``: a stock Elasticsearch home), made if need be."""
    dist = dist_dir(settings, src)
    if (dist / ".complete").is_file():
        return dist
    with file_lock(settings.cache / ".lock", cache.CACHE_LOCK_TIMEOUT_S, "the cache lock"):
        if (dist / ".complete").is_file():
            return dist
        _fill_dist(settings, java, dist, src)
    return dist


def _fill_dist(settings: Settings, java: cache.Java, dist: Path, src: Path) -> None:
    version = es_version(src)
    if not shutil.which("mvn"):
        raise LauncherError(
            f"mvn not found: needed once to download Elasticsearch {version} into {settings.cache}"
        )
    tmp = dist.with_name(f"{dist.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy(src / "pom.xml", tmp / "pom.xml")
    log.info("downloading Elasticsearch %s with mvn into %s (first run only) ...", version, dist)
    args = ["dependency:copy-dependencies", f"-DoutputDirectory={tmp / 'lib'}"]
    args.append("-DincludeScope=runtime")
    for attempt in (1, 2, 3):
        if cache._mvn(settings, java, tmp, args):
            break
        log.info("mvn attempt %d failed (log: %s)", attempt, tmp / "mvn.log")
        time.sleep(attempt * 3)
    else:
        raise LauncherError(
            f"could not download Elasticsearch {version} with mvn (see {tmp}/mvn.log)"
        )
    archive = tmp / "lib" / f"elasticsearch-{version}.zip"
    if not archive.is_file():
        raise LauncherError(f"mvn did not produce {archive.name} in {tmp / 'lib'}")
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp)
    home = tmp / "home"
    (tmp / f"elasticsearch-{version}").rename(home)
    for script in (home / "bin").iterdir():
        script.chmod(0o755)
    lay_out_modules(tmp / "lib", home, version)
    shutil.rmtree(tmp / "lib")
    (tmp / ".complete").touch()
    shutil.rmtree(dist, ignore_errors=True)
    tmp.rename(dist)
    log.info("cached Elasticsearch %s in %s", version, dist)


def link_tree(source: Path, dest: Path) -> None:
    """``dest``: a copy of ``source`` made of hard links (plain copies across filesystems)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest, copy_function=link, symlinks=True)


# -- the user the nodes run as ---------------------------------------------------------------


@dataclass(frozen=True)
class RunAs:
    """Who a node runs as: ``uid``/``gid``, and the command prefix that switches to them
    (empty when the launcher already is that user)."""

    uid: int
    gid: int
    prefix: tuple[str, ...] = ()


def reachable_by_others(path: Path) -> bool:
    """Whether a user who owns none of ``path``'s ancestors may traverse down to it."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def run_as(user: str = ES_USER) -> RunAs:
    """As root: ``user``, created (a system user with its own group) if missing, through
    ``setpriv``. Otherwise: whoever runs the launcher."""
    if os.geteuid() != 0:
        return RunAs(os.getuid(), os.getgid())
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        entry = None
    if entry is None:
        done = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell",
             "/usr/sbin/nologin", user],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if done.returncode != 0 and "already exists" not in done.stderr:
            raise LauncherError(
                f"Elasticsearch does not run as root and useradd {user} failed: "
                f"{done.stderr.strip()}"
            )
        entry = pwd.getpwnam(user)
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise LauncherError("setpriv not found: needed to run Elasticsearch as a non-root user")
    prefix = (
        setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--",
    )  # fmt: skip
    return RunAs(entry.pw_uid, entry.pw_gid, prefix)


def chown_tree(path: Path, who: RunAs) -> None:
    if os.geteuid() != 0:
        return
    os.chown(path, who.uid, who.gid)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), who.uid, who.gid, follow_symlinks=False)


# -- config and command line -------------------------------------------------------------------


def elasticsearch_yml(node: Node, home: Path, table: Sequence[Node], security: bool) -> str:
    """``config/elasticsearch.yml`` of ``node`` (directory ``home``) in a cluster of ``table``."""
    lines = [
        f"cluster.name: {CLUSTER_NAME}",
        f"node.name: {node.name}",
        f"path.data: {home}/data",
        f"path.logs: {home}/logs",
        f'path.repo: ["{home}/repo"]',
        "network.host: 127.0.0.1",
        f"http.port: {node.http_port}",
        f"transport.port: {node.transport_port}",
    ]
    if len(table) == 1:
        lines.append("discovery.type: single-node")
    else:
        seeds = ", ".join(f'"127.0.0.1:{n.transport_port}"' for n in table)
        lines += [f"discovery.seed_hosts: [{seeds}]", 'cluster.initial_master_nodes: ["node-1"]']
    lines += [
        "cluster.routing.allocation.disk.threshold_enabled: false",
        "node.store.allow_mmap: false",
        "bootstrap.memory_lock: false",
        "action.destructive_requires_name: false",
        'reindex.remote.whitelist: ["127.0.0.1:*", "localhost:*"]',
        "xpack.security.enabled: " + ("true" if security else "false"),
    ]
    if security:
        lines += [
            "xpack.security.authc.realms.file.file1.order: 0",
            "xpack.security.transport.ssl.enabled: false",
            "xpack.security.http.ssl.enabled: false",
        ]
    return "\n".join(lines) + "\n"


def jvm_command(
    java: Path,
    dist_home: Path,
    node_home: Path,
    xms: str,
    xmx: str,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The java command line of one node (what ``bin/elasticsearch`` would exec, without
    its JVM options parser): ``dist_home`` the Elasticsearch home, ``node_home`` the node's
    directory (``config/`` is its ``ES_PATH_CONF``)."""
    return [
        str(java),
        f"-Xms{xms}",
        f"-Xmx{xmx}",
        *nodes.JVM_OPTIONS,
        "-Des.networkaddress.cache.ttl=60",
        "-Des.networkaddress.cache.negative.ttl=10",
        "-Djava.locale.providers=SPI,COMPAT",
        f"-Djava.io.tmpdir={node_home}/tmp",
        f"-XX:ErrorFile={node_home}/logs/hs_err_pid%p.log",
        *extra,
        nodes.marker(node_home),
        f"-Des.path.home={dist_home}",
        f"-Des.path.conf={node_home}/config",
        "-Des.distribution.flavor=default",
        "-Des.distribution.type=zip",
        "-Des.bundled_jdk=false",
        "-cp",
        f"{dist_home}/lib/*",
        "org.elasticsearch.bootstrap.Elasticsearch",
    ]


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def health_with_auth(url: str, auth: tuple[str, str] | None) -> Health | None:
    """The cluster health at ``url`` (as ``auth``'s user when given); None without one."""
    request = urllib.request.Request(f"{url}/_cluster/health")
    if auth is not None:
        request.add_header("Authorization", basic_auth_header(*auth))
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            data = json.loads(resp.read().decode("utf-8"))
        return Health(str(data["status"]), int(data["number_of_nodes"]))
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- the engine home -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileUser:
    """A user of the file realm: its password and roles (built-in or from ``roles.yml``)."""

    password: str
    roles: tuple[str, ...]


class ElasticsearchHome(EngineHome):
    """An engine home running Elasticsearch 7.17 (see the module docstring).

    ``users``: file-realm users, which turn x-pack security on (the first one is the one
    the launcher's health waits authenticate as: give it a role that may read cluster
    health, e.g. ``superuser``); ``roles_yml``: the ``roles.yml`` those users' roles are
    defined in."""

    def __init__(
        self,
        settings: Settings,
        users: Mapping[str, FileUser] | None = None,
        roles_yml: str = "",
        src: Path = ES_SRC,
    ) -> None:
        super().__init__(settings)
        self.file_users = dict(users or {})
        self.roles_yml = roles_yml
        self.src = src

    @property
    def outside(self) -> Path | None:
        """Where the nodes' directories and the distribution live when the node user may
        not enter the home (a home under pytest's ``/tmp/pytest-of-root``, mode 0700):
        ``<tmp>/reindex-fsm-es-<hash of the home>``; None when they live in the home."""
        if os.geteuid() != 0 or reachable_by_others(self.path):
            return None
        digest = hashlib.sha256(str(self.path).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"reindex-fsm-es-{digest}"

    def node_home(self, name: str) -> Path:
        outside = self.outside
        return (outside or self.path) / "nodes" / name

    @property
    def dist_home(self) -> Path:
        """The home's hard-linked copy of the cached distribution."""
        return (self.outside or self.path) / "dist"

    @property
    def security(self) -> bool:
        return bool(self.file_users)

    def _auth(self) -> tuple[str, str] | None:
        if not self.file_users:
            return None
        name, user = next(iter(self.file_users.items()))
        return name, user.password

    # -- what is there

    def live_url(self) -> str | None:
        auth = self._auth()
        url = self.recorded_url()
        if url and health_with_auth(url, auth) is not None:
            return url
        for node in self.table():
            if self.alive(node.name) and health_with_auth(node.url, auth) is not None:
                return node.url
        return None

    def status(self) -> tuple[int, str]:
        url = self.live_url()
        if url is None:
            raise LauncherError(f"no engine running (state dir {self.path})")
        request = urllib.request.Request(f"{url}/_cluster/health?pretty")
        auth = self._auth()
        if auth is not None:
            request.add_header("Authorization", basic_auth_header(*auth))
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return 0, resp.read().decode("utf-8")
        except urllib.error.HTTPError as err:
            return (0 if err.code < 500 else 2), err.read().decode("utf-8", "replace")
        except OSError as err:
            raise LauncherError(str(err)) from err

    # -- commands

    def fetch(self) -> Path:
        return ensure_dist(self.settings, cache.select_java(self.settings), self.src)

    def start(self, count: int | None = None) -> str:
        """Start the engine (``count`` nodes, default 1), or reuse the healthy one started
        earlier in this home (with as many nodes, if given, and the same security); return
        node-1's URL."""
        if count is not None and not 1 <= count <= MAX_NODES:
            raise LauncherError(f"--nodes must be 1..{MAX_NODES}")
        java = cache.select_java(self.settings)
        dist = ensure_dist(self.settings, java, self.src)
        who = run_as()
        with self._lock():
            reused = self._reusable_es(count, dist)
            if reused:
                return reused
            for attempt in range(1, START_ATTEMPTS + 1):
                self._stop_all()
                url = self._launch_es_cluster(count or 1, java, dist, who)
                if url:
                    (self.path / "url").write_text(url + "\n")
                    return url
                if attempt < START_ATTEMPTS and self._port_clash():
                    log.info("port clash on attempt %d; retrying with other ports", attempt)
                    continue
                break
            self._stop_all()
        raise LauncherError(
            f"Elasticsearch did not start (green within {self.settings.timeout_s:g}s); "
            f"logs: {self.path}/logs/"
        )

    def start_node(self, which: str) -> str:
        java = cache.select_java(self.settings)
        ensure_dist(self.settings, java, self.src)
        who = run_as()
        with self._lock():
            node = nodes.resolve_node(self.table(), which)
            if self.alive(node.name):
                log.info("%s is already running", node.name)
                return node.url
            (self.node_home(node.name) / ".stopped").unlink(missing_ok=True)
            self._launch_es_node(node.name, java, who)
            want = sum(not self.stopped(n.name) for n in self.table())
            deadline = time.monotonic() + self.settings.timeout_s
            if not self._wait_health(node.url, want, "any", deadline):
                raise LauncherError(
                    f"{node.name} did not rejoin within {self.settings.timeout_s:g}s"
                )
            log.info("started %s (%s)", node.name, node.url)
            return node.url

    # -- inside

    def _started_with(self) -> str:
        """What the running cluster was started with: its cache entry and security."""
        path = self.path / "started-with"
        return path.read_text().strip() if path.is_file() else ""

    def _wanted(self, dist: Path) -> str:
        return f"{dist.name} security={'on' if self.security else 'off'}"

    def _reusable_es(self, count: int | None, dist: Path) -> str | None:
        url = self.recorded_url()
        if url is None:
            return None
        table = self.table()
        down = [n.name for n in table if not self.alive(n.name)]
        now = health_with_auth(url, self._auth())
        wanted = self._wanted(dist)
        if (
            not down
            and now is not None
            and now.status != "red"
            and now.nodes == len(table)
            and (count is None or count == len(table))
            and self._started_with() == wanted
        ):
            return url
        log.info(
            "restarting the engine in %s (was: %d node(s), down: %s, health: %s, %s; "
            "wanted: %d, %s)",
            self.path,
            len(table),
            " ".join(down) or "none",
            f"{now.status} {now.nodes}" if now else "no answer",
            self._started_with() or "unknown",
            count or 1,
            wanted,
        )
        return None

    def _launch_es_cluster(
        self, count: int, java: cache.Java, dist: Path, who: RunAs
    ) -> str | None:
        table = nodes.plan_nodes(nodes.free_ports(2 * count))
        (self.path / "logs").mkdir(parents=True, exist_ok=True)
        if self._started_with().split(" ")[0] != dist.name or not self.dist_home.is_dir():
            link_tree(dist / "home", self.dist_home)
        for node in table:
            (self.path / "logs" / f"{node.name}.log").write_text("")
            self._write_node_config(node, table, who)
        nodes.write_table(self.table_path, table)
        (self.path / "started-with").write_text(self._wanted(dist) + "\n")
        for node in table:
            self._launch_es_node(node.name, java, who)
        deadline = time.monotonic() + self.settings.timeout_s
        url = table[0].url
        return url if self._wait_health(url, count, "green", deadline) else None

    def _write_node_config(self, node: Node, table: list[Node], who: RunAs) -> None:
        home = self.node_home(node.name)
        for sub in ("data", "logs", "repo", "tmp"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        config = home / "config"
        shutil.rmtree(config, ignore_errors=True)
        shutil.copytree(self.dist_home / "config", config)
        (config / "elasticsearch.yml").write_text(
            elasticsearch_yml(node, home, table, self.security)
        )
        (config / "log4j2.properties").write_text(LOG4J2)
        (config / "roles.yml").write_text(self.roles_yml)
        chown_tree(home, who)
        if self.file_users:
            self._add_users(config, who)

    def _add_users(self, config: Path, who: RunAs) -> None:
        """Add the file-realm users with the distribution's own ``elasticsearch-users``."""
        java = cache.select_java(self.settings)
        env = {**os.environ, "ES_JAVA_HOME": str(java.home), "ES_PATH_CONF": str(config)}
        env.pop("JAVA_HOME", None)
        tool = self.dist_home / "bin" / "elasticsearch-users"
        for name, user in self.file_users.items():
            argv = [*who.prefix, str(tool), "useradd", name, "-p", user.password]
            if user.roles:
                argv += ["-r", ",".join(user.roles)]
            done = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=120, check=False
            )
            if done.returncode != 0:
                raise LauncherError(
                    f"elasticsearch-users useradd {name} failed: "
                    f"{(done.stdout + done.stderr).strip()[-500:]}"
                )

    def _launch_es_node(self, name: str, java: cache.Java, who: RunAs) -> None:
        home = self.node_home(name)
        logfile = self.path / "logs" / f"{name}.log"
        argv = [
            *who.prefix,
            *jvm_command(
                java.java,
                self.dist_home,
                home,
                initial_heap(self.settings.heap),
                self.settings.heap,
                self.settings.java_opts,
            ),
        ]
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ES_", "JAVA_", "REINDEX_FSM_"))
        }
        # What bin/elasticsearch-env exports: the node checks that libffi has a tmp dir.
        env.update(HOME=str(home), ES_TMPDIR=f"{home}/tmp", LIBFFI_TMPDIR=f"{home}/tmp")
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(logfile, "ab") as out:
            out.write(f"=== {stamp} starting {name} (Elasticsearch, uid {who.uid}) ===\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                cwd=home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        nodes.remember(proc)
        (home / "pid").write_text(f"{proc.pid}\n")

    def _stop_all(self) -> None:
        outside = self.outside
        if outside is not None and (outside / "nodes").is_dir():
            for leftover in (outside / "nodes").iterdir():  # nodes whose table was lost
                self._kill_node(leftover.name, signal.SIGTERM, STOP_WAIT_S)
        super()._stop_all()
        if outside is not None:
            shutil.rmtree(outside / "nodes", ignore_errors=True)
        (self.path / "started-with").unlink(missing_ok=True)

    def _wait_health(self, url: str, want_nodes: int, want: str, deadline: float) -> bool:
        if not self.security:
            return super()._wait_health(url, want_nodes, want, deadline)
        while True:
            for node in self.table():
                if not self.stopped(node.name) and not self.alive(node.name):
                    time.sleep(3)
                    if not self.alive(node.name):
                        self._log_tail(node.name)
                        log.warning("node %s exited during startup", node.name)
                        return False
            last = health_with_auth(url, self._auth())
            if last is not None and last.nodes == want_nodes and last.is_at_least(want):
                return True
            if time.monotonic() >= deadline:
                log.warning("timed out waiting for %s health at %s", want, url)
                return False
            time.sleep(1)
