"""The Elasticsearch 7.17 test-engine launcher (``devtools.engine.elasticsearch``) without Java
or the network: the kind setting, the cache entry's key and module layout, the node config,
the command line and the user the nodes run as."""

from __future__ import annotations

import os
import pwd
import re
import tempfile
from pathlib import Path

import pytest

from devtools.engine import EngineHome, LauncherError, Settings
from devtools.engine import elasticsearch as es
from devtools.engine.homes import engine_home
from devtools.engine.nodes import MARKER, Node

# -- the kind --------------------------------------------------------------------------------


def test_the_kind_is_read_from_the_environment(tmp_path: Path) -> None:
    assert Settings.from_env({}).kind == "opensearch-2"
    assert Settings.from_env({"REINDEX_FSM_ENGINE_KIND": " Elasticsearch-7 "}).kind == (
        "elasticsearch-7"
    )
    with pytest.raises(LauncherError, match="unknown engine kind 'elasticsearch-6'"):
        engine_home(Settings.from_env({"REINDEX_FSM_ENGINE_KIND": "elasticsearch-6"}))
    home = engine_home(Settings(home=tmp_path / "es", kind="elasticsearch-7"))
    assert isinstance(home, es.ElasticsearchHome)
    plain = engine_home(Settings(home=tmp_path / "os"))
    assert type(plain) is EngineHome


# -- the cache entry -------------------------------------------------------------------------


def test_the_pom_names_the_distribution_and_every_module() -> None:
    pom = (es.ES_SRC / "pom.xml").read_text()
    assert es.es_version() == "7.17.29"
    artifacts = set(re.findall(r"<artifactId>([^<]+)</artifactId>", pom))
    assert "elasticsearch" in artifacts and "integ-test-zip" in pom
    assert {m.artifact for m in es.MODULES} <= artifacts
    assert len({m.name for m in es.MODULES}) == len(es.MODULES)


def test_the_cache_key_follows_the_pom(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    pom = (es.ES_SRC / "pom.xml").read_text()
    (src / "pom.xml").write_text(pom)
    key = es.dist_key(src)
    assert key == es.dist_key(es.ES_SRC) and re.fullmatch(r"[0-9a-f]{12}", key)
    entry = es.dist_dir(Settings(cache=tmp_path / "cache"), src)
    assert entry == tmp_path / "cache" / f"elasticsearch-7.17.29-{key}"
    (src / "pom.xml").write_text(pom.replace("7.17.29</elasticsearch.version>", "7.17.28<"))
    assert es.dist_key(src) != key
    with pytest.raises(LauncherError, match="missing"):
        es.dist_dir(Settings(), tmp_path / "nowhere")


def _jar(folder: Path, name: str) -> None:
    (folder / name).write_bytes(b"PK")


def test_modules_are_laid_out_with_their_jars_and_descriptors(tmp_path: Path) -> None:
    lib, home = tmp_path / "lib", tmp_path / "home"
    lib.mkdir()
    (home / "lib").mkdir(parents=True)
    _jar(home / "lib", "elasticsearch-core-7.17.29.jar")  # the server has it already
    for module in es.MODULES:
        _jar(lib, f"{module.artifact}-7.17.29.jar")
    for artifact, version in {
        "elasticsearch-rest-client": "7.17.29",
        "elasticsearch-ssl-config": "7.17.29",
        "elasticsearch-core": "7.17.29",
        "httpclient": "4.5.14",
        "httpcore": "4.4.12",
        "httpasyncclient": "4.1.4",
        "httpcore-nio": "4.4.12",
        "commons-codec": "1.15",
        "commons-logging": "1.1.3",
        "compiler": "0.9.6",
    }.items():
        _jar(lib, f"{artifact}-{version}.jar")
    es.lay_out_modules(lib, home, "7.17.29")

    reindex = home / "modules" / "reindex"
    jars = sorted(p.name for p in reindex.glob("*.jar"))
    assert "reindex-client-7.17.29.jar" in jars and "httpclient-4.5.14.jar" in jars
    assert "elasticsearch-rest-client-7.17.29.jar" in jars
    assert "elasticsearch-core-7.17.29.jar" not in jars  # no jar hell with the server's
    descriptor = (reindex / "plugin-descriptor.properties").read_text()
    assert "name=reindex\n" in descriptor
    assert "classname=org.elasticsearch.reindex.ReindexPlugin\n" in descriptor
    assert "elasticsearch.version=7.17.29\n" in descriptor and "type=isolated\n" in descriptor
    assert 'SocketPermission "*", "connect"' in (reindex / "plugin-security.policy").read_text()
    mustache = sorted(p.name for p in (home / "modules" / "lang-mustache").glob("*.jar"))
    assert mustache == ["compiler-0.9.6.jar", "lang-mustache-client-7.17.29.jar"]
    assert not (home / "modules" / "mapper-extras" / "plugin-security.policy").exists()

    (lib / "httpcore-nio-4.4.12.jar").unlink()
    with pytest.raises(LauncherError, match=r"httpcore-nio-\*\.jar for reindex"):
        es.lay_out_modules(lib, tmp_path / "other", "7.17.29")


def test_a_home_gets_a_hard_linked_copy_of_the_distribution(tmp_path: Path) -> None:
    src = tmp_path / "entry"
    (src / "lib").mkdir(parents=True)
    (src / "lib" / "a.jar").write_text("jar")
    es.link_tree(src, tmp_path / "home" / "dist")
    copy = tmp_path / "home" / "dist" / "lib" / "a.jar"
    assert copy.read_text() == "jar"
    assert copy.stat().st_ino == (src / "lib" / "a.jar").stat().st_ino
    es.link_tree(src, tmp_path / "home" / "dist")  # again: replaced, not merged into
    assert copy.is_file()


# -- config and command line -------------------------------------------------------------------


def test_elasticsearch_yml_of_one_node_and_of_a_cluster(tmp_path: Path) -> None:
    one = Node("node-1", 9200, 9300)
    text = es.elasticsearch_yml(one, tmp_path, [one], security=False)
    assert "discovery.type: single-node\n" in text
    assert "network.host: 127.0.0.1\n" in text and "http.port: 9200\n" in text
    assert f"path.data: {tmp_path}/data\n" in text
    assert "xpack.security.enabled: false\n" in text and "realms" not in text
    two = [one, Node("node-2", 9201, 9301)]
    text = es.elasticsearch_yml(two[1], tmp_path, two, security=True)
    assert "single-node" not in text
    assert 'discovery.seed_hosts: ["127.0.0.1:9300", "127.0.0.1:9301"]\n' in text
    assert 'cluster.initial_master_nodes: ["node-1"]\n' in text
    assert "xpack.security.enabled: true\n" in text
    assert "xpack.security.authc.realms.file.file1.order: 0\n" in text


def test_the_command_line_carries_the_marker_and_the_paths(tmp_path: Path) -> None:
    argv = es.jvm_command(
        Path("/jdk/bin/java"), tmp_path / "dist", tmp_path / "n1", "512m", "1g", ("-Dx=1",)
    )
    assert argv[:3] == ["/jdk/bin/java", "-Xms512m", "-Xmx1g"]
    assert f"{MARKER}{tmp_path / 'n1'}" in argv and "-Dx=1" in argv
    assert f"-Des.path.home={tmp_path / 'dist'}" in argv
    assert f"-Des.path.conf={tmp_path / 'n1'}/config" in argv
    assert argv[-3:] == [
        "-cp",
        f"{tmp_path / 'dist'}/lib/*",
        "org.elasticsearch.bootstrap.Elasticsearch",
    ]


# -- the user --------------------------------------------------------------------------------


def test_a_launcher_that_is_not_root_runs_nodes_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1234)
    assert es.run_as() == es.RunAs(os.getuid(), os.getgid(), ())


def test_root_runs_nodes_as_the_system_user_through_setpriv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    entry = pwd.struct_passwd(("esuser", "x", 990, 991, "", "/nonexistent", "/usr/sbin/nologin"))
    monkeypatch.setattr(pwd, "getpwnam", lambda name: entry)
    monkeypatch.setattr(es.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    who = es.run_as("esuser")
    assert (who.uid, who.gid) == (990, 991)
    assert who.prefix == ("/usr/bin/setpriv", "--reuid=990", "--regid=991", "--init-groups", "--")


def test_a_home_only_root_may_enter_is_told_apart(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    (closed / "home").mkdir(parents=True)
    tmp_path.chmod(0o755)
    closed.chmod(0o755)
    assert es.reachable_by_others(closed / "home") is (
        all(p.stat().st_mode & 0o001 for p in tmp_path.parents)
    )
    closed.chmod(0o700)
    assert es.reachable_by_others(closed / "home") is False
    home = es.ElasticsearchHome(Settings(home=closed / "home"))
    if os.geteuid() == 0:  # the node user could not enter it: nodes and dist live in tmp
        assert home.outside is not None and home.outside.parent == Path(tempfile.gettempdir())
        assert home.node_home("node-1") == home.outside / "nodes" / "node-1"
        assert home.dist_home == home.outside / "dist"
    else:
        assert home.outside is None and home.dist_home == closed / "home" / "dist"


def test_a_missing_user_is_created_and_a_failed_useradd_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    made: list[list[str]] = []
    entry = pwd.struct_passwd(("esuser", "x", 990, 991, "", "/nonexistent", "/usr/sbin/nologin"))

    def getpwnam(name: str) -> pwd.struct_passwd:
        if not made:
            raise KeyError(name)
        return entry

    class Done:
        returncode = 0
        stderr = ""

    def run(argv: list[str], **_kw: object) -> Done:
        made.append(argv)
        return Done()

    monkeypatch.setattr(pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(es.subprocess, "run", run)
    monkeypatch.setattr(es.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    assert es.run_as("esuser").uid == 990
    assert made == [
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell",
         "/usr/sbin/nologin", "esuser"],
    ]  # fmt: skip

    made.clear()
    Done.returncode, Done.stderr = 1, "useradd: cannot lock /etc/passwd\n"
    monkeypatch.setattr(pwd, "getpwnam", lambda name: (_ for _ in ()).throw(KeyError(name)))
    with pytest.raises(LauncherError, match="does not run as root and useradd esuser failed: "):
        es.run_as("esuser")
