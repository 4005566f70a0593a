"""The nodes of one engine home: the node table, free ports, each node's config files and
JVM command line, and finding a node's process.

An engine home holds ``nodes.tsv`` (one line per node: ``name http_port transport_port``,
the format the shell launcher wrote, so either launcher reads the other's engines), ``url``
(node-1's URL), ``knn`` (the k-NN plugin directory the cluster was started with, or an empty
line), ``kind`` (the engine kind it was started as, ``kinds``), ``logs/<name>.log`` and
``nodes/<name>/`` (config, data, ``pid``, and ``.stopped`` while ``stop-node`` keeps it
down). A node's JVM carries the marker
``-Dreindexfsm.engine.node=<its dir>`` on its command line: its recorded PID is trusted only
while that process carries the marker, and a node whose PID was not recorded (or whose table
was lost) is found by the marker in ``/proc``."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import security
from .settings import CLUSTER_NAME, LauncherError

MARKER = "-Dreindexfsm.engine.node="
NODE_NAME = re.compile(r"node-[1-9][0-9]*")

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
logger.deprecation.name = org.opensearch.deprecation
logger.deprecation.level = deprecation
logger.deprecation.appenderRef.console.ref = console
logger.deprecation.appenderRef.header_warning.ref = header_warning
logger.deprecation.additivity = false
"""

JVM_OPTIONS = (
    "-Xss1m",
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Dfile.encoding=UTF-8",
    "-Djna.nosys=true",
    "-Dio.netty.noUnsafe=true",
    "-Dio.netty.noKeySetOptimization=true",
    "-Dio.netty.recycler.maxCapacityPerThread=0",
    "-Dio.netty.allocator.numDirectArenas=0",
    "-Dlog4j.shutdownHookEnabled=false",
    "-Dlog4j2.disable.jmx=true",
    "-Dlog4j2.formatMsgNoLookups=true",
)


@dataclass(frozen=True)
class Node:
    """One row of the node table."""

    name: str
    http_port: int
    transport_port: int
    scheme: str = "http"  # https on a secured engine (not in the table: the home says)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"


# -- the node table --------------------------------------------------------------------------


def plan_nodes(ports: list[int]) -> list[Node]:
    """node-1..node-N on the first N ports (HTTP) and the next N (transport)."""
    if not ports or len(ports) % 2:
        raise ValueError(f"need two ports per node, got {len(ports)}")
    count = len(ports) // 2
    return [Node(f"node-{i + 1}", ports[i], ports[count + i]) for i in range(count)]


def format_table(nodes: Iterable[Node]) -> str:
    return "".join(f"{n.name} {n.http_port} {n.transport_port}\n" for n in nodes)


def parse_table(text: str) -> list[Node]:
    """The rows of a node table; a line that is not ``name http transport`` is an error."""
    nodes = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
            raise LauncherError(f"line {number} of the node table is not 'name http transport'")
        nodes.append(Node(fields[0], int(fields[1]), int(fields[2])))
    return nodes


def read_table(path: Path) -> list[Node]:
    return parse_table(path.read_text()) if path.is_file() else []


def write_table(path: Path, nodes: Iterable[Node]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(format_table(nodes))
    tmp.replace(path)


def resolve_node(nodes: list[Node], arg: str) -> Node:
    """A node by name (``node-2``) or by index (``2``)."""
    name = f"node-{arg}" if arg.isdigit() else arg
    for node in nodes:
        if node.name == name:
            return node
    names = " ".join(n.name for n in nodes)
    raise LauncherError(f"no node '{arg}' in the engine (nodes: {names})")


# -- ports -------------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now (all bound at once, then let go:
    another process may still take one before the JVM binds it, so a start retries)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


# -- config and command line -------------------------------------------------------------------


def opensearch_yml(node: Node, home: Path, nodes: list[Node], secured: bool = False) -> str:
    """``config/opensearch.yml`` of ``node`` (its directory ``home``) in a cluster of ``nodes``."""
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
    if len(nodes) == 1:
        lines.append("discovery.type: single-node")
    else:
        seeds = ", ".join(f'"127.0.0.1:{n.transport_port}"' for n in nodes)
        lines += [
            f"discovery.seed_hosts: [{seeds}]",
            'cluster.initial_cluster_manager_nodes: ["node-1"]',
        ]
    lines += [
        "cluster.routing.allocation.disk.threshold_enabled: false",
        "node.store.allow_mmap: false",
        "bootstrap.memory_lock: false",
        'reindex.remote.allowlist: ["127.0.0.1:*", "localhost:*"]',
    ]
    # -- security: TLS and the security plugin (engine_home's security/ made beforehand)
    if secured:
        lines += security.opensearch_yml_lines()
    return "\n".join(lines) + "\n"


def write_node_config(
    node: Node, home: Path, nodes: list[Node], engine_home: Path | None = None
) -> None:
    """The config files of ``node`` in ``home``; with ``engine_home``, a secured node's
    too (certificates and the security plugin's files from ``engine_home/security``)."""
    for sub in ("config", "data", "logs", "repo", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    secured = engine_home is not None
    (home / "config" / "opensearch.yml").write_text(opensearch_yml(node, home, nodes, secured))
    (home / "config" / "log4j2.properties").write_text(LOG4J2)
    if engine_home is not None:
        security.write_node_files(engine_home, home)


def jvm_command(
    java: Path,
    home: Path,
    classpath: str,
    xms: str,
    xmx: str,
    java_major: int | None,
    extra: tuple[str, ...] = (),
    descriptors: Path | None = None,
) -> list[str]:
    """The command line of one node's JVM (``home``: the node's directory)."""
    argv = [str(java), f"-Xms{xms}", f"-Xmx{xmx}", *JVM_OPTIONS, f"-Djava.io.tmpdir={home}/tmp"]
    if java_major is not None and java_major < 23:
        argv.append("-Djava.locale.providers=SPI,COMPAT")
    if descriptors is not None:
        argv.append(f"-Dengine.plugin.descriptors={descriptors}")
    argv += [*extra, marker(home), "-cp", classpath, "EngineNode", str(home)]
    return argv


def marker(home: Path) -> str:
    return f"{MARKER}{home}"


# -- processes -----------------------------------------------------------------------------------

# JVMs started by this process: reaped as soon as they exit, so none lingers as a zombie
# in a long-lived caller (a test session that starts and kills nodes).
_children: dict[int, subprocess.Popen[bytes]] = {}


def remember(proc: subprocess.Popen[bytes]) -> None:
    _children[proc.pid] = proc


def _reap() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


def _cmdline(pid: int | str) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def pids_with_marker(home: Path) -> list[int]:
    """Every process whose command line carries ``home``'s marker as one argument."""
    _reap()
    want = marker(home)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and want in _cmdline(entry):
            found.append(int(entry))
    return sorted(found)


def node_pids(home: Path) -> list[int]:
    """The running JVM of the node in ``home``: its recorded PID while that process carries
    the node's marker, else whatever process carries it."""
    _reap()
    try:
        pid = int((home / "pid").read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if pid and marker(home) in _cmdline(pid):
        return [pid]
    return pids_with_marker(home)
