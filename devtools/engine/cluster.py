"""One engine home and its cluster: start (or reuse), stop, one node down and up again, and
the health waits in between. Every command that changes the cluster holds an exclusive lock
on ``<home>/.lock`` (the lock the shell launcher took too), so two starts of one home never
race; no JVM inherits it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from . import cache, nodes, security
from .kinds import kind_of
from .locks import file_lock
from .nodes import Node
from .security import Access
from .settings import DEFAULT_KIND, MAX_NODES, LauncherError, Settings, initial_heap, log

STATE_LOCK_TIMEOUT_S = 600
STOP_WAIT_S = 30
START_ATTEMPTS = 3  # a port picked as free can be taken before the JVM binds it
PORT_CLASH = ("BindHttpException", "BindTransportException", "Address already in use")
MISSING_CHECKS = 5  # a node absent on this many checks in a row has exited


def parse_node_count(value: str) -> int:
    """``--nodes``: 1..MAX_NODES."""
    if not value.isdigit() or value.startswith("0") or int(value) > MAX_NODES:
        raise LauncherError(f"--nodes must be 1..{MAX_NODES}")
    return int(value)


# -- HTTP ----------------------------------------------------------------------------------------


def http_get(url: str, timeout: float, access: Access | None = None) -> tuple[int, str]:
    """(HTTP status, body) of a GET; OSError when nothing answers. ``access``: the CA and
    the user of a secured engine."""
    request = urllib.request.Request(url)
    context = None
    if access is not None:
        token = base64.b64encode(f"{access.user}:{access.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        context = security.ssl_context(access.ca)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


@dataclass(frozen=True)
class Health:
    status: str  # green, yellow, red
    nodes: int

    def is_at_least(self, want: str) -> bool:
        """``want``: green, yellow (green or yellow) or any."""
        if want == "any":
            return True
        if want == "yellow":
            return self.status in ("green", "yellow")
        return self.status == "green"


def health(url: str, access: Access | None = None) -> Health | None:
    """The cluster health at ``url``, None if it does not answer one."""
    try:
        code, body = http_get(f"{url}/_cluster/health", 5, access)
        if code >= 500:
            return None
        data = json.loads(body)
        return Health(str(data["status"]), int(data["number_of_nodes"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- the engine home -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeStatus:
    name: str
    pids: list[int]
    url: str

    @property
    def up(self) -> bool:
        return bool(self.pids)

    def line(self) -> str:
        """The line ``engine.sh nodes`` prints: name, pids (or -), URL, up|down."""
        pids = ",".join(map(str, self.pids)) or "-"
        return f"{self.name}\t{pids}\t{self.url}\t{'up' if self.up else 'down'}"


class EngineHome:
    """The engine of one home directory (``settings.home``)."""

    def __init__(self, settings: Settings) -> None:
        self.kind = kind_of(settings.kind)  # an unknown kind is refused before anything
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.path = settings.home.resolve()  # node markers carry the canonical path

    # -- what is there

    @property
    def table_path(self) -> Path:
        return self.path / "nodes.tsv"

    def table(self) -> list[Node]:
        table = nodes.read_table(self.table_path)
        if self.secured():
            return [replace(n, scheme="https") for n in table]
        return table

    # -- security: a secured home (TLS, users) records it in ``secured``

    def secured(self) -> bool:
        """Started with the security plugin (its nodes speak HTTPS)."""
        return (self.path / "secured").is_file()

    def access(self) -> Access | None:
        """The admin's access (CA, user, password) of a secured engine, None otherwise."""
        return security.admin_access(self.path) if self.secured() else None

    def users(self) -> dict[str, str]:
        """user -> password of a secured engine ({} otherwise)."""
        return security.users(self.path) if self.secured() else {}

    @property
    def ca_path(self) -> Path:
        return security.security_dir(self.path) / "ca.pem"

    def node_home(self, name: str) -> Path:
        return self.path / "nodes" / name

    def alive(self, name: str) -> bool:
        return bool(nodes.node_pids(self.node_home(name)))

    def stopped(self, name: str) -> bool:
        """Kept down by stop-node."""
        return (self.node_home(name) / ".stopped").exists()

    def nodes(self) -> list[NodeStatus]:
        return [
            NodeStatus(n.name, nodes.node_pids(self.node_home(n.name)), n.url) for n in self.table()
        ]

    def recorded_url(self) -> str | None:
        path = self.path / "url"
        return path.read_text().strip() or None if path.is_file() else None

    def url(self) -> str | None:
        """node-1's URL (the one ``start`` printed) while it runs, else the first live
        node's; None when the engine was not started or no node runs."""
        if self.recorded_url() is None:
            return None
        for node in self.table():
            if self.alive(node.name):
                return node.url
        return None

    def live_url(self) -> str | None:
        """The first URL that answers a health request: the recorded one, else a live
        node's."""
        url = self.recorded_url()
        access = self.access()
        if url and health(url, access) is not None:
            return url
        for node in self.table():
            if self.alive(node.name) and health(node.url, access) is not None:
                return node.url
        return None

    def running(self) -> bool:
        return self.live_url() is not None

    def status(self) -> tuple[int, str]:
        """(exit code, pretty health JSON) as ``engine.sh status`` prints it: 0, 2 when the
        engine answers with a server error; LauncherError when no engine answers."""
        url = self.live_url()
        if url is None:
            raise LauncherError(f"no engine running (state dir {self.path})")
        try:
            code, body = http_get(f"{url}/_cluster/health?pretty", 10, self.access())
        except OSError as err:
            raise LauncherError(str(err)) from err
        return (0 if code < 500 else 2), body

    # -- commands

    def start(self, count: int | None = None) -> str:
        """Start the engine (``count`` nodes, default 1), or reuse the healthy one started
        earlier in this home (with as many nodes, if ``count`` is given, and the k-NN plugin
        iff it is to be loaded now); return node-1's URL."""
        if count is not None and not 1 <= count <= MAX_NODES:
            raise LauncherError(f"--nodes must be 1..{MAX_NODES}")
        java = cache.select_java(self.settings)
        dist = cache.ensure_dist(self.settings, java)
        knn = cache.ensure_knn(self.settings, java, dist)
        if self.settings.security:
            cache.ensure_security(self.settings, java, dist)
        with self._lock():
            reused = self._reusable(count, knn)
            if reused:
                return reused
            for attempt in range(1, START_ATTEMPTS + 1):
                self._stop_all()
                url = self._launch_cluster(count or 1, java, dist, knn)
                if url:
                    (self.path / "url").write_text(url + "\n")
                    if self.secured():
                        log.info(
                            "secured: CA %s, users and passwords in %s",
                            self.ca_path,
                            self.ca_path.with_name("users.json"),
                        )
                    return url
                if attempt < START_ATTEMPTS and self._port_clash():
                    log.info("port clash on attempt %d; retrying with other ports", attempt)
                    continue
                break
            self._stop_all()
        raise LauncherError(
            f"{self.kind.name} did not start (green within {self.settings.timeout_s:g}s); "
            f"logs: {self.path}/logs/"
        )

    def stop(self) -> None:
        """Stop every node, wait for them, delete their data (logs stay)."""
        with self._lock():
            self._stop_all()

    def stop_node(self, which: str, kill: bool = False) -> str:
        """Stop one node (SIGTERM; ``kill``: SIGKILL, a crash); it stays down until
        start_node. Returns its name."""
        with self._lock():
            node = nodes.resolve_node(self.table(), which)
            if not self.alive(node.name):
                log.info("%s is not running", node.name)
            (self.node_home(node.name) / ".stopped").touch()
            sig = signal.SIGKILL if kill else signal.SIGTERM
            self._kill_node(node.name, sig, STOP_WAIT_S)
            log.info("stopped %s (%s)", node.name, sig.name)
            return node.name

    def start_node(self, which: str) -> str:
        """Start a stopped node again (its data kept) and wait until it answers and sees
        the cluster; returns its URL."""
        java = cache.select_java(self.settings)
        dist = cache.ensure_dist(self.settings, java)
        with self._lock():
            node = nodes.resolve_node(self.table(), which)
            if self.alive(node.name):
                log.info("%s is already running", node.name)
                return node.url
            (self.node_home(node.name) / ".stopped").unlink(missing_ok=True)
            self._launch_node(node.name, java, dist)
            want = sum(not self.stopped(n.name) for n in self.table())
            deadline = time.monotonic() + self.settings.timeout_s
            if not self._wait_health(node.url, want, "any", deadline):
                raise LauncherError(
                    f"{node.name} did not rejoin within {self.settings.timeout_s:g}s"
                )
            log.info("started %s (%s)", node.name, node.url)
            return node.url

    # -- inside

    def _lock(self) -> AbstractContextManager[None]:
        return file_lock(self.path / ".lock", STATE_LOCK_TIMEOUT_S, "the engine lock")

    def _knn_started_with(self) -> str:
        path = self.path / "knn"
        return path.read_text().strip() if path.is_file() else ""

    def kind_started(self) -> str:
        """The kind the engine of this home was started as (an engine started before kinds
        were recorded is the default one's)."""
        path = self.path / "kind"
        return (path.read_text().strip() if path.is_file() else "") or DEFAULT_KIND

    def _reusable(self, count: int | None, knn: Path | None) -> str | None:
        url = self.recorded_url()
        if url is None:
            return None
        table = self.table()
        down = [n.name for n in table if not self.alive(n.name)]
        had_knn = self._knn_started_with()
        had_kind = self.kind_started()
        now = health(url, self.access())
        if (
            not down
            and now is not None
            and now.status != "red"
            and now.nodes == len(table)
            and (count is None or count == len(table))
            and had_knn == (str(knn) if knn else "")
            and self.secured() == self.settings.security
            and had_kind == self.kind.name
        ):
            return url
        log.info(
            "restarting the engine in %s (was: %s, %d node(s), down: %s, health: %s, k-NN: %s; "
            "wanted: %s, %d, k-NN: %s)",
            self.path,
            had_kind,
            len(table),
            " ".join(down) or "none",
            f"{now.status} {now.nodes}" if now else "no answer",
            "on" if had_knn else "off",
            self.kind.name,
            count or 1,
            "on" if knn else "off",
        )
        return None

    def _launch_cluster(
        self, count: int, java: cache.Java, dist: Path, knn: Path | None
    ) -> str | None:
        """Write the configs of ``count`` fresh nodes, launch them, wait for green; node-1's
        URL, or None if it did not get there."""
        table = nodes.plan_nodes(nodes.free_ports(2 * count))
        (self.path / "logs").mkdir(parents=True, exist_ok=True)
        secured_home = None
        if self.settings.security:  # new certificates and passwords at each fresh start
            security.prepare(self.path)
            (self.path / "secured").touch()
            secured_home = self.path
            table = [replace(n, scheme="https") for n in table]
        for node in table:
            (self.path / "logs" / f"{node.name}.log").write_text("")
            nodes.write_node_config(node, self.node_home(node.name), table, secured_home)
        nodes.write_table(self.table_path, table)
        (self.path / "knn").write_text(f"{knn or ''}\n")
        (self.path / "kind").write_text(f"{self.kind.name}\n")
        for node in table:
            self._launch_node(node.name, java, dist)
        deadline = time.monotonic() + self.settings.timeout_s
        url = table[0].url
        return url if self._wait_health(url, count, "green", deadline) else None

    def _launch_node(self, name: str, java: cache.Java, dist: Path) -> None:
        home = self.node_home(name)
        logfile = self.path / "logs" / f"{name}.log"
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        major = java.major()
        classpath = f"{dist}/lib/*:{dist}/classes"
        descriptors = None
        knn = self._knn_started_with()
        if knn and (Path(knn) / ".complete").is_file():
            classpath = f"{dist}/lib/*:{knn}/*:{dist}/classes"
            descriptors = Path(knn) / "plugin-descriptor.properties"
        elif knn:
            log.warning(
                "warning: the k-NN plugin is gone from %s; starting %s without it", knn, name
            )
        if self.secured():  # the security plugin's jars and descriptor
            plugin = dist / "security"
            classpath = classpath.replace(f":{dist}/classes", f":{plugin}/*:{dist}/classes")
            found = plugin / "plugin-descriptor.properties"
            descriptors = Path(f"{descriptors},{found}") if descriptors else found
        argv = nodes.jvm_command(
            java.java,
            home,
            classpath,
            initial_heap(self.settings.heap),
            self.settings.heap,
            major,
            self.settings.java_opts,
            descriptors,
        )
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(logfile, "ab") as out:
            out.write(f"=== {stamp} starting {name} (java {major or ''}) ===\n".encode())
            out.flush()
            # A new session: the JVM outlives this process and the caller's terminal.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        nodes.remember(proc)
        (home / "pid").write_text(f"{proc.pid}\n")

    def _kill_node(self, name: str, sig: signal.Signals, wait_s: float) -> None:
        home = self.node_home(name)
        pids = nodes.node_pids(home)
        if not pids:
            return
        _signal(pids, sig)
        if _gone(home, wait_s):
            return
        pids = nodes.node_pids(home)
        log.info("%s did not exit after %s in %gs; sending SIGKILL", name, sig.name, wait_s)
        _signal(pids, signal.SIGKILL)
        if not _gone(home, 10):
            raise LauncherError(f"could not stop {name} (pids: {' '.join(map(str, pids))})")

    def _stop_all(self) -> None:
        names = {n.name for n in self.table()}
        # Nodes whose table was lost are still found by their marker.
        if (self.path / "nodes").is_dir():
            names |= {p.name for p in (self.path / "nodes").iterdir() if p.is_dir()}
        for name in sorted(names):
            _signal(nodes.node_pids(self.node_home(name)), signal.SIGTERM)
        for name in sorted(names):
            self._kill_node(name, signal.SIGTERM, STOP_WAIT_S)
        shutil.rmtree(self.path / "nodes", ignore_errors=True)
        for leftover in ("nodes.tsv", "url", "knn", "secured", "kind"):
            (self.path / leftover).unlink(missing_ok=True)

    def _port_clash(self) -> bool:
        for logfile in (self.path / "logs").glob("node-*.log"):
            text = logfile.read_text(errors="replace")
            if any(word in text for word in PORT_CLASH):
                return True
        return False

    def _log_tail(self, name: str) -> None:
        logfile = self.path / "logs" / f"{name}.log"
        if logfile.is_file():
            tail = logfile.read_text(errors="replace").splitlines()[-40:]
            log.warning("last lines of %s:\n%s", logfile, "\n".join(tail))

    def _wait_health(self, url: str, want_nodes: int, want: str, deadline: float) -> bool:
        """Poll until ``url`` reports ``want_nodes`` nodes and ``want`` health (green,
        yellow or any); False if a node exits meanwhile or the deadline passes."""
        missing: dict[str, int] = {}
        last: Health | None = None
        while True:
            for node in self.table():
                if self.stopped(node.name):
                    continue
                # A node just launched may not have exec'd java yet on a loaded machine:
                # only a node missing on several checks in a row has exited.
                if self.alive(node.name):
                    missing[node.name] = 0
                    continue
                missing[node.name] = missing.get(node.name, 0) + 1
                if missing[node.name] >= MISSING_CHECKS:
                    self._log_tail(node.name)
                    log.warning("node %s exited during startup", node.name)
                    return False
            last = health(url, self.access())
            if last is not None and last.nodes == want_nodes and last.is_at_least(want):
                return True
            if time.monotonic() >= deadline:
                seen = f"{last.status} {last.nodes}" if last else "no answer"
                log.warning(
                    "timed out after %gs waiting for %s health with %d node(s) at %s (last: %s)",
                    self.settings.timeout_s,
                    want,
                    want_nodes,
                    url,
                    seen,
                )
                return False
            time.sleep(1)


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, sig)


def _gone(home: Path, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while nodes.node_pids(home):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True
