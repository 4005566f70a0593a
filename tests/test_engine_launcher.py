"""The test-engine launcher (``devtools.engine``) without Java: its settings, node table,
ports, node configs and command lines, process lookup by marker, the lock, the cache key and
its argument parsing."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devtools.engine import (
    EngineHome,
    Health,
    LauncherError,
    Settings,
    cache,
    cli,
    nodes,
    parse_node_count,
)
from devtools.engine.kinds import kind_of, source_dir
from devtools.engine.locks import file_lock
from devtools.engine.nodes import Node
from devtools.engine.settings import ENGINE_SRC, initial_heap, knn_enabled

ROOT = Path(__file__).resolve().parents[1]


# -- settings --------------------------------------------------------------------------------


def test_settings_from_the_environment_and_defaults() -> None:
    plain = Settings.from_env({"HOME": "/home/op"})
    assert plain.home == Path("/tmp/reindex-fsm-engine")
    assert plain.cache == Path("/home/op/.cache/reindex-fsm/engine")
    assert (plain.timeout_s, plain.heap, plain.knn, plain.java_opts) == (180.0, "1g", True, ())
    assert plain.kind == "opensearch-2" and plain.src is None
    env = {
        "REINDEX_FSM_ENGINE_HOME": "/tmp/x",
        "REINDEX_FSM_ENGINE_CACHE": "/c",
        "REINDEX_FSM_ENGINE_TIMEOUT": "30",
        "REINDEX_FSM_ENGINE_HEAP": "256m",
        "REINDEX_FSM_ENGINE_JAVA_HOME": "/jdk",
        "REINDEX_FSM_ENGINE_JAVA_OPTS": "-Da=1  -Db=2",
        "REINDEX_FSM_ENGINE_MVN_REPO": "/m2",
        "REINDEX_FSM_ENGINE_KNN": "off",
        "REINDEX_FSM_ENGINE_KIND": "opensearch-3",
    }
    got = Settings.from_env(env)
    assert got.kind == "opensearch-3"
    assert got.home == Path("/tmp/x") and got.cache == Path("/c") and got.timeout_s == 30.0
    assert (got.heap, got.java_home, got.mvn_repo, got.knn) == ("256m", "/jdk", "/m2", False)
    assert got.java_opts == ("-Da=1", "-Db=2")
    assert Settings.from_env(env, knn=True, home=Path("/h")).knn is True
    with pytest.raises(LauncherError, match="REINDEX_FSM_ENGINE_TIMEOUT must be a number"):
        Settings.from_env({"REINDEX_FSM_ENGINE_TIMEOUT": "soon"})


@pytest.mark.parametrize(
    ("value", "on"), [(None, True), ("1", True), ("0", False), ("false", False), ("No", False)]
)
def test_knn_switch(value: str | None, on: bool) -> None:
    assert knn_enabled(value) is on


@pytest.mark.parametrize(
    ("heap", "xms"), [("1g", "512m"), ("2048m", "512m"), ("512m", "512m"), ("256m", "256m")]
)
def test_initial_heap_is_512m_or_the_maximum_if_less(heap: str, xms: str) -> None:
    assert initial_heap(heap) == xms


# -- node table, ports, configs -------------------------------------------------------------


def test_node_table_round_trips_in_the_shell_launchers_format(tmp_path: Path) -> None:
    table = nodes.plan_nodes([9201, 9202, 9301, 9302])
    assert table == [Node("node-1", 9201, 9301), Node("node-2", 9202, 9302)]
    path = tmp_path / "nodes.tsv"
    nodes.write_table(path, table)
    assert path.read_text() == "node-1 9201 9301\nnode-2 9202 9302\n"
    assert nodes.read_table(path) == table
    assert nodes.read_table(tmp_path / "missing.tsv") == []
    assert table[1].url == "http://127.0.0.1:9202"
    with pytest.raises(LauncherError, match="line 2 of the node table"):
        nodes.parse_table("node-1 1 2\nnode-2 x 3\n")
    with pytest.raises(ValueError):
        nodes.plan_nodes([1, 2, 3])


def test_nodes_are_found_by_name_or_index() -> None:
    table = nodes.plan_nodes([1, 2, 3, 4])
    assert nodes.resolve_node(table, "2").name == "node-2"
    assert nodes.resolve_node(table, "node-1").name == "node-1"
    with pytest.raises(LauncherError, match=r"no node '3' in the engine \(nodes: node-1 node-2\)"):
        nodes.resolve_node(table, "3")


def test_free_ports_are_distinct_and_bindable() -> None:
    import socket

    ports = nodes.free_ports(6)
    assert len(set(ports)) == 6 and all(1024 <= p <= 65535 for p in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))


def test_node_config_single_node_and_cluster(tmp_path: Path) -> None:
    one = nodes.plan_nodes([9201, 9301])
    text = nodes.opensearch_yml(one[0], tmp_path / "n1", one)
    assert "discovery.type: single-node\n" in text and "seed_hosts" not in text
    assert f"path.data: {tmp_path}/n1/data\n" in text and "http.port: 9201\n" in text
    three = nodes.plan_nodes([1, 2, 3, 11, 12, 13])
    text = nodes.opensearch_yml(three[2], tmp_path / "n3", three)
    assert 'discovery.seed_hosts: ["127.0.0.1:11", "127.0.0.1:12", "127.0.0.1:13"]\n' in text
    assert 'cluster.initial_cluster_manager_nodes: ["node-1"]\n' in text
    assert "node.name: node-3\n" in text and "transport.port: 13\n" in text
    nodes.write_node_config(three[2], tmp_path / "n3", three)
    assert {p.name for p in (tmp_path / "n3").iterdir()} == {
        "config",
        "data",
        "logs",
        "repo",
        "tmp",
    }
    assert (tmp_path / "n3" / "config" / "log4j2.properties").read_text() == nodes.LOG4J2


def test_jvm_command_line(tmp_path: Path) -> None:
    home = tmp_path / "nodes" / "node-1"
    argv = nodes.jvm_command(Path("/jdk/bin/java"), home, "cp/*", "512m", "1g", 17, ("-Dx=1",))
    assert argv[:3] == ["/jdk/bin/java", "-Xms512m", "-Xmx1g"]
    assert "-Djava.locale.providers=SPI,COMPAT" in argv
    marker = f"-Dreindexfsm.engine.node={home}"
    assert argv[-6:] == ["-Dx=1", marker, "-cp", "cp/*", "EngineNode", str(home)]
    later = nodes.jvm_command(Path("j"), home, "cp", "1", "1", 25, (), Path("/k/p.properties"))
    assert "-Djava.locale.providers=SPI,COMPAT" not in later
    assert "-Dengine.plugin.descriptors=/k/p.properties" in later


def test_a_node_process_is_found_by_its_marker(tmp_path: Path) -> None:
    home = tmp_path / "nodes" / "node-1"
    home.mkdir(parents=True)
    assert nodes.node_pids(home) == []
    # One process that forks nothing: a shell would fork its `sleep`, and for an instant the
    # child still carries the shell's command line (the marker) before it execs.
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", nodes.marker(home)]
    )
    try:
        deadline = time.monotonic() + 5
        while not nodes.pids_with_marker(home) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert nodes.node_pids(home) == [proc.pid]  # no pid file: found in /proc
        (home / "pid").write_text(f"{proc.pid}\n")
        assert nodes.node_pids(home) == [proc.pid]
        (home / "pid").write_text(f"{proc.pid + 100000}\n")  # a stale pid: /proc again
        assert nodes.node_pids(home) == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
    assert nodes.node_pids(home) == []


def test_node_status_line_is_what_nodes_prints() -> None:
    from devtools.engine import NodeStatus

    assert NodeStatus("node-1", [12, 13], "http://127.0.0.1:1").line() == (
        "node-1\t12,13\thttp://127.0.0.1:1\tup"
    )
    assert NodeStatus("node-2", [], "http://127.0.0.1:2").line() == (
        "node-2\t-\thttp://127.0.0.1:2\tdown"
    )


@pytest.mark.parametrize(
    ("status", "want", "ok"),
    [
        ("green", "green", True),
        ("yellow", "green", False),
        ("yellow", "yellow", True),
        ("green", "yellow", True),
        ("red", "yellow", False),
        ("red", "any", True),
    ],
)
def test_health_wanted(status: str, want: str, ok: bool) -> None:
    assert Health(status, 1).is_at_least(want) is ok


def test_an_empty_home_has_no_engine(tmp_path: Path) -> None:
    home = EngineHome(Settings(home=tmp_path / "home"))
    assert (home.url(), home.live_url(), home.nodes(), home.running()) == (None, None, [], False)
    with pytest.raises(LauncherError, match="no engine running"):
        home.status()
    home.stop()  # nothing to stop: fine
    with pytest.raises(LauncherError, match="no node '1'"):
        home.stop_node("1")


# -- the lock ---------------------------------------------------------------------------------


def test_the_lock_excludes_and_times_out(tmp_path: Path) -> None:
    path = tmp_path / "dir" / ".lock"
    with file_lock(path, 1):
        with (
            pytest.raises(LauncherError, match="timed out waiting for the lock"),
            file_lock(path, 0.3),
        ):
            pass
        # another process (the shell's flock takes the same lock) cannot have it either
        other = subprocess.run(["flock", "-w", "0.2", str(path), "true"], check=False)
        assert other.returncode != 0
    with file_lock(path, 0.3):  # released
        pass


def test_the_lock_waits_for_its_holder(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    order: list[str] = []
    held = threading.Event()

    def holder() -> None:
        with file_lock(path, 1):
            held.set()
            time.sleep(0.3)
            order.append("holder done")

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    with file_lock(path, 5):
        order.append("waiter in")
    thread.join()
    assert order == ["holder done", "waiter in"]


# -- cache key and arguments -------------------------------------------------------------------


def test_cache_key_of_the_pom_and_launcher(tmp_path: Path) -> None:
    dist = cache.dist_dir(Settings(cache=tmp_path))
    assert dist.parent == tmp_path
    assert dist.name == f"opensearch-2.19.6-{cache.dist_key(ENGINE_SRC)}"
    shell = subprocess.run(
        f"cat {ENGINE_SRC}/pom.xml {ENGINE_SRC}/EngineNode.java | sha256sum | cut -c1-12",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    assert cache.dist_key(ENGINE_SRC) == shell.stdout.strip()  # the shell launcher's key
    assert cache.pom_property(ENGINE_SRC / "pom.xml", "opensearch-knn.version") == "2.19.1.0"


# -- engine kinds --------------------------------------------------------------------------------


def test_each_kind_has_its_own_cache_entry_and_the_2x_key_is_unchanged(tmp_path: Path) -> None:
    two = cache.dist_dir(Settings(cache=tmp_path, kind="opensearch-2"))
    three = cache.dist_dir(Settings(cache=tmp_path, kind="opensearch-3"))
    src3 = ENGINE_SRC / "opensearch-3"
    assert kind_of("opensearch-3").src == src3 and source_dir(Settings()) == ENGINE_SRC
    assert three.name == f"opensearch-3.5.0-{cache.dist_key(src3)}"
    assert two.name == f"opensearch-2.19.6-{cache.dist_key(ENGINE_SRC)}" != three.name
    assert cache.pom_property(src3 / "pom.xml", "opensearch-knn.version") is None
    assert not kind_of("opensearch-3").knn and kind_of("opensearch-2").knn
    # no k-NN download is tried for a kind without a build that runs on it
    no_java = cache.Java(tmp_path / "no-jdk")
    assert cache.ensure_knn(Settings(cache=tmp_path, kind="opensearch-3"), no_java, three) is None
    assert not (three / "knn").exists() and not (three / "knn.failed").exists()


def test_an_unknown_kind_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        LauncherError, match=r"unknown engine kind 'es-6' .*opensearch-2, opensearch-3"
    ):
        EngineHome(Settings(home=tmp_path, kind="es-6"))
    assert not (tmp_path / "nodes").exists()
    wrapper = subprocess.run(
        [str(ROOT / "scripts" / "engine.sh"), "start"],
        env={
            "PATH": "/usr/bin:/bin",
            "REINDEX_FSM_ENGINE_HOME": str(tmp_path / "h"),
            "REINDEX_FSM_ENGINE_KIND": "es-6",
        },
        capture_output=True,
        text=True,
    )
    assert wrapper.returncode == 1 and wrapper.stdout == ""
    assert wrapper.stderr.startswith("engine.sh: error: unknown engine kind 'es-6'")


def fake_jdk(path: Path, major: int) -> Path:
    """A JDK directory whose ``java`` reports ``major`` as ``-XshowSettings`` does."""
    (path / "bin").mkdir(parents=True)
    for tool in ("java", "javac"):
        script = path / "bin" / tool
        script.write_text(f"#!/bin/sh\necho '    java.specification.version = {major}' >&2\n")
        script.chmod(0o755)
    return path


def test_each_kind_has_its_jdk_and_3x_refuses_an_older_java(tmp_path: Path) -> None:
    assert kind_of("opensearch-2").jdk == Path("/usr/lib/jvm/java-17-openjdk-amd64")
    assert kind_of("opensearch-3").jdk == Path("/usr/lib/jvm/temurin-25-jdk-amd64")
    old, new = fake_jdk(tmp_path / "j17", 17), fake_jdk(tmp_path / "j25", 25)
    # an explicit JDK wins; 2.x takes any, 3.x checks it
    assert cache.select_java(Settings(kind="opensearch-2", java_home=str(old))).home == old
    assert cache.select_java(Settings(kind="opensearch-3", java_home=str(new))).home == new
    with pytest.raises(LauncherError, match=r"opensearch-3 needs Java 21\+, .*j17 is Java 17"):
        cache.select_java(Settings(kind="opensearch-3", java_home=str(old)))


def test_a_home_knows_the_kind_it_was_started_as(tmp_path: Path) -> None:
    home = EngineHome(Settings(home=tmp_path, kind="opensearch-3"))
    assert home.kind.name == "opensearch-3"
    assert home.kind_started() == "opensearch-2"  # nothing recorded: the default kind
    (tmp_path / "kind").write_text("opensearch-3\n")
    assert home.kind_started() == "opensearch-3"
    home.stop()  # nothing runs: the record goes with the cluster
    assert not (tmp_path / "kind").exists()


@pytest.mark.parametrize(("value", "count"), [("1", 1), ("3", 3), ("9", 9)])
def test_node_count(value: str, count: int) -> None:
    assert parse_node_count(value) == count


@pytest.mark.parametrize("value", ["0", "10", "x", "-1", "01", ""])
def test_node_count_refused(value: str) -> None:
    with pytest.raises(LauncherError, match=r"--nodes must be 1\.\.9"):
        parse_node_count(value)


def test_arguments() -> None:
    parse = cli.parser().parse_args
    assert parse(["start"]).nodes is None
    assert parse(["start", "--nodes", "3"]).nodes == "3"
    assert parse(["start", "--nodes=2"]).nodes == "2"
    kill = parse(["stop-node", "node-2", "--kill"])
    assert (kill.command, kill.node, kill.kill) == ("stop-node", "node-2", True)
    assert parse(["stop-node", "2"]).kill is False
    assert parse(["start-node", "2"]).node == "2"
    for command in ("url", "status", "nodes", "stop", "fetch", "help"):
        assert parse([command]).command == command
    for bad in ([], ["bogus"], ["stop-node"], ["start", "--nodes"]):
        with pytest.raises(SystemExit) as exited:
            parse(bad)
        assert exited.value.code == 2


def test_the_wrapper_runs_the_launcher(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "REINDEX_FSM_ENGINE_HOME": str(tmp_path / "h")}
    empty = subprocess.run(
        [str(ROOT / "scripts" / "engine.sh"), "url"], env=env, capture_output=True, text=True
    )
    assert (empty.returncode, empty.stdout) == (1, "")
    status = subprocess.run(
        [str(ROOT / "scripts" / "engine.sh"), "status"], env=env, capture_output=True, text=True
    )
    assert status.returncode == 1
    assert status.stderr == f"engine.sh: error: no engine running (state dir {tmp_path}/h)\n"
    helped = subprocess.run(
        [sys.executable, "-m", "devtools.engine", "help"], cwd=ROOT, capture_output=True, text=True
    )
    assert helped.returncode == 0 and "REINDEX_FSM_ENGINE_HOME" in helped.stderr
