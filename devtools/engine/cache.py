"""The engine's jars, fetched once from Maven Central into a cache shared by every engine
home: ``<cache>/<flavor>-<version>-<key>/{lib,classes}``, the key being a hash of the pom
and the node launcher of the engine kind (``kinds``; so a change to either makes a new
entry, each kind has its own, and an entry made by the earlier shell launcher is reused as it
is). The k-NN plugin is unpacked into ``knn/`` of the same entry by a second, separate
download that may fail: the engine then runs without it.

Filling the cache is the only step that needs the network (``mvn``); it happens under an
exclusive lock on ``<cache>/.lock``, so parallel starts download once."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .kinds import kind_of, source_dir
from .locks import file_lock
from .settings import KNN_RETRY_SECONDS, LauncherError, Settings, log

CACHE_LOCK_TIMEOUT_S = 900


@dataclass(frozen=True)
class Java:
    home: Path

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"

    @property
    def javac(self) -> Path:
        return self.home / "bin" / "javac"

    def major(self) -> int | None:
        """The Java major version (``java.specification.version``), None if unknown."""
        try:
            out = subprocess.run(
                [str(self.java), "-XshowSettings:properties", "-version"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except OSError:
            return None
        found = re.search(r"^\s*java\.specification\.version = (\d+)", out.stderr, re.M)
        return int(found.group(1)) if found else None


def is_jdk(home: Path) -> bool:
    return all((home / "bin" / tool).is_file() for tool in ("java", "javac"))


def select_java(settings: Settings) -> Java:
    """REINDEX_FSM_ENGINE_JAVA_HOME, else the engine kind's JDK if present (OpenJDK 17 for
    OpenSearch 2, Temurin 25 for OpenSearch 3), else JAVA_HOME, else the JDK of the
    ``javac`` on PATH. A kind that needs a Java newer than 17 refuses an older one."""
    kind = kind_of(settings.kind)
    java = _find_java(settings.java_home, str(kind.jdk), kind.min_java)
    if kind.min_java > 17:
        major = java.major()
        if major is not None and major < kind.min_java:
            raise LauncherError(
                f"{kind.name} needs Java {kind.min_java}+, {java.home} is Java {major}: "
                f"set REINDEX_FSM_ENGINE_JAVA_HOME to a newer JDK"
            )
    return java


def _find_java(explicit: str | None, preferred: str, min_java: int) -> Java:
    for candidate in (explicit, preferred, os.environ.get("JAVA_HOME")):
        if candidate and is_jdk(Path(candidate)):
            return Java(Path(candidate))
    javac = shutil.which("javac")
    if not javac:
        raise LauncherError(
            f"no JDK found (need java + javac {min_java}+); set REINDEX_FSM_ENGINE_JAVA_HOME"
        )
    return Java(Path(javac).resolve().parent.parent)


def pom_property(pom: Path, name: str) -> str | None:
    found = re.search(rf"<{re.escape(name)}>(.*)</{re.escape(name)}>", pom.read_text())
    return found.group(1) if found else None


def dist_key(src: Path) -> str:
    """The cache key: the first 12 hex digits of sha256(pom.xml + EngineNode.java)."""
    digest = hashlib.sha256()
    for name in ("pom.xml", "EngineNode.java"):
        digest.update((src / name).read_bytes())
    return digest.hexdigest()[:12]


def dist_dir(settings: Settings) -> Path:
    src = source_dir(settings)
    pom = src / "pom.xml"
    if not pom.is_file() or not (src / "EngineNode.java").is_file():
        raise LauncherError(f"missing {pom} or {src / 'EngineNode.java'}")
    version = pom_property(pom, "opensearch.version")
    if not version:
        raise LauncherError(f"cannot read opensearch.version from {pom}")
    return settings.cache / f"{kind_of(settings.kind).flavor}-{version}-{dist_key(src)}"


def _mvn(settings: Settings, java: Java, workdir: Path, args: list[str]) -> bool:
    """One mvn run in ``workdir``, its output in ``workdir/mvn.log``; True if it worked."""
    argv = ["mvn", "-B", "-f", str(workdir / "pom.xml"), *args]
    if settings.mvn_repo:
        argv.append(f"-Dmaven.repo.local={settings.mvn_repo}")
    env = {**os.environ, "JAVA_HOME": str(java.home)}
    with open(workdir / "mvn.log", "w") as out:
        done = subprocess.run(argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    return done.returncode == 0


def ensure_dist(settings: Settings, java: Java) -> Path:
    """The cache entry of this pom and launcher, downloaded and compiled if need be."""
    dist = dist_dir(settings)
    if (dist / ".complete").is_file():
        return dist
    with file_lock(settings.cache / ".lock", CACHE_LOCK_TIMEOUT_S, "the cache lock"):
        if (dist / ".complete").is_file():
            return dist
        _fill_dist(settings, java, dist)
    return dist


def _fill_dist(settings: Settings, java: Java, dist: Path) -> None:
    version = dist.name.split("-")[1]
    if not shutil.which("mvn"):
        raise LauncherError(
            f"mvn not found: needed once to download OpenSearch {version} into {settings.cache}"
        )
    tmp = dist.with_name(f"{dist.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    src = source_dir(settings)
    shutil.copy(src / "pom.xml", tmp / "pom.xml")
    log.info("downloading OpenSearch %s jars with mvn into %s (first run only) ...", version, dist)
    args = ["dependency:copy-dependencies", f"-DoutputDirectory={tmp / 'lib'}"]
    args.append("-DincludeScope=runtime")
    for attempt in (1, 2, 3):
        if _mvn(settings, java, tmp, args):
            break
        log.info("mvn attempt %d failed (log: %s)", attempt, tmp / "mvn.log")
        time.sleep(attempt * 3)
    else:
        tail = (tmp / "mvn.log").read_text(errors="replace").splitlines()[-30:]
        log.warning("\n".join(tail))
        raise LauncherError(f"could not download OpenSearch {version} with mvn (see {tmp}/mvn.log)")
    if not (tmp / "lib" / f"opensearch-{version}.jar").is_file():
        raise LauncherError(f"mvn did not produce opensearch-{version}.jar in {tmp / 'lib'}")
    (tmp / "classes").mkdir()
    source = src / "EngineNode.java"
    with open(tmp / "javac.log", "w") as out:
        compiled = subprocess.run(
            [
                str(java.javac),
                "--release",
                str(kind_of(settings.kind).java_release),
                "-nowarn",
                "-d",
                str(tmp / "classes"),
                "-cp",
                f"{tmp / 'lib'}/*",
                str(source),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if compiled.returncode != 0:
        log.warning("%s", (tmp / "javac.log").read_text(errors="replace"))
        raise LauncherError(f"could not compile {source}")
    shutil.rmtree(tmp / "target", ignore_errors=True)
    (tmp / ".complete").touch()
    shutil.rmtree(dist, ignore_errors=True)
    tmp.rename(dist)
    log.info("cached OpenSearch %s in %s", version, dist)


def ensure_knn(settings: Settings, java: Java, dist: Path, force: bool = False) -> Path | None:
    """``dist/knn`` (the k-NN plugin zip, unpacked), downloading it if need be; None (with a
    warning) when it is turned off or cannot be had: the engine then runs without it. A
    failed download is tried again only after an hour, unless ``force``."""
    if not settings.knn:
        return None
    if not kind_of(settings.kind).knn:
        log.info("no k-NN plugin for %s (none served runs on it)", settings.kind)
        return None
    knn = dist / "knn"
    if (knn / ".complete").is_file():
        return knn
    failed = dist / "knn.failed"
    retry = "the engine runs without it (scripts/engine.sh fetch retries)"
    if not force and failed.is_file():
        age = int(time.time() - failed.stat().st_mtime)
        if age < KNN_RETRY_SECONDS:
            log.warning(
                "warning: no k-NN plugin: its download failed %ds ago (log: %s); %s",
                age,
                failed,
                retry,
            )
            return None
    if not _fetch_knn(settings, java, dist):
        log.warning("warning: no k-NN plugin: could not download it (log: %s); %s", failed, retry)
        return None
    return knn


def _fetch_knn(settings: Settings, java: Java, dist: Path) -> bool:
    """Unpack org.opensearch.plugin:opensearch-knn (profile "knn" of the pom) into
    ``dist/knn``; on failure the reason is left in ``dist/knn.failed``."""
    try:
        with file_lock(settings.cache / ".lock", CACHE_LOCK_TIMEOUT_S, "the cache lock"):
            return _fetch_knn_locked(settings, java, dist)
    except LauncherError as err:
        log.warning("%s", err)
        return False


def _download_dir(settings: Settings, dist: Path, plugin: str) -> Path:
    """A new, empty ``dist/<plugin>.tmp.<pid>`` holding the kind's pom, for mvn to fetch a
    plugin zip into."""
    tmp = dist / f"{plugin}.tmp.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy(source_dir(settings) / "pom.xml", tmp / "pom.xml")
    return tmp


def _fetch_knn_locked(settings: Settings, java: Java, dist: Path) -> bool:
    knn, failed = dist / "knn", dist / "knn.failed"
    if (knn / ".complete").is_file():
        return True
    tmp = _download_dir(settings, dist, "knn")
    why = _download_knn(settings, java, tmp)
    if why is not None:
        with open(tmp / "mvn.log", "a") as out:
            out.write(why + "\n")
        (tmp / "mvn.log").replace(failed)
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    (tmp / "plugin" / ".complete").touch()
    shutil.rmtree(knn, ignore_errors=True)
    (tmp / "plugin").rename(knn)
    shutil.rmtree(tmp, ignore_errors=True)
    failed.unlink(missing_ok=True)
    log.info("cached the k-NN plugin in %s", knn)
    return True


def _download_knn(settings: Settings, java: Java, tmp: Path) -> str | None:
    """Run mvn for the plugin into ``tmp/plugin``; None if it worked, else why not."""
    pom = source_dir(settings) / "pom.xml"
    version = pom_property(pom, "opensearch-knn.version")
    if not version:
        return f"no opensearch-knn.version in {pom}"
    if not shutil.which("mvn"):
        return "mvn not found"
    log.info(
        "downloading the k-NN plugin (org.opensearch.plugin:opensearch-knn:%s) with mvn "
        "into %s ...",
        version,
        tmp.parent / "knn",
    )
    why = unpack_plugin_zip(settings, java, tmp, "knn", "opensearch-knn", "org.opensearch.knn.")
    if why is not None:
        return why
    if not list((tmp / "plugin").glob("opensearch-knn-*.jar")):
        return "the opensearch-knn zip has no opensearch-knn-*.jar"
    return None


# -- the security plugin (a secured engine home) -----------------------------------------------


def ensure_security(settings: Settings, java: Java, dist: Path) -> Path:
    """``dist/security``: the security plugin zip unpacked, less the jars the engine's own
    ``lib/`` already has in another version (OpenSearch modules, netty, httpclient ...: the
    engine's come first on the classpath and a second copy would only shadow nothing or
    clash). Downloaded if need be; a secured engine was asked for, so a failure is an
    error, not a warning."""
    plugin = dist / "security"
    if (plugin / ".complete").is_file():
        return plugin
    with file_lock(settings.cache / ".lock", CACHE_LOCK_TIMEOUT_S, "the cache lock"):
        if (plugin / ".complete").is_file():
            return plugin
        tmp = _download_dir(settings, dist, "security")
        why = _download_security(settings, java, tmp)
        if why is not None:
            raise LauncherError(f"no security plugin: {why} (log: {tmp / 'mvn.log'})")
        out = tmp / "plugin"
        for jar in duplicated_jars(out, dist / "lib"):
            jar.unlink()
        (out / ".complete").touch()
        shutil.rmtree(plugin, ignore_errors=True)
        out.rename(plugin)
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("cached the security plugin in %s", plugin)
    return plugin


_JAR_VERSION = re.compile(r"-\d[\w.]*?(?:-jre)?\.jar$")


def jar_artifact(name: str) -> str:
    """``netty-codec-4.1.125.Final.jar`` -> ``netty-codec``."""
    return _JAR_VERSION.sub("", name)


def duplicated_jars(plugin: Path, lib: Path) -> list[Path]:
    """The jars of ``plugin`` whose artifact ``lib`` has too (in any version)."""
    have = {jar_artifact(p.name) for p in lib.glob("*.jar")}
    return sorted(p for p in plugin.glob("*.jar") if jar_artifact(p.name) in have)


def _download_security(settings: Settings, java: Java, tmp: Path) -> str | None:
    pom = source_dir(settings) / "pom.xml"
    version = pom_property(pom, "opensearch-security.version")
    if not version:
        return f"no opensearch-security.version in {pom}"
    if not shutil.which("mvn"):
        return "mvn not found"
    log.info(
        "downloading the security plugin (org.opensearch.plugin:opensearch-security:%s) with "
        "mvn ...",
        version,
    )
    return unpack_plugin_zip(
        settings, java, tmp, "security", "opensearch-security", "org.opensearch.security."
    )


def unpack_plugin_zip(
    settings: Settings, java: Java, tmp: Path, profile: str, artifact: str, class_prefix: str
) -> str | None:
    """Unpack the plugin zip ``org.opensearch.plugin:<artifact>`` of the pom's ``profile``
    into ``tmp/plugin`` (mvn, tried twice) and check that its descriptor names a class under
    ``class_prefix``. None when done, else why not (one line)."""
    args = ["-P", profile, "dependency:unpack-dependencies", "-DincludeTypes=zip"]
    args += ["-DincludeGroupIds=org.opensearch.plugin", f"-DincludeArtifactIds={artifact}"]
    args.append(f"-DoutputDirectory={tmp / 'plugin'}")
    for attempt in (1, 2):
        if _mvn(settings, java, tmp, args):
            break
        if attempt == 1:
            time.sleep(3)
    else:
        return "mvn failed twice"
    descriptor = tmp / "plugin" / "plugin-descriptor.properties"
    text = descriptor.read_text(errors="replace") if descriptor.is_file() else ""
    if not re.search(rf"^classname={re.escape(class_prefix)}", text, re.M):
        return (
            f"the {artifact} zip has no plugin-descriptor.properties naming a {class_prefix}* class"
        )
    return None
