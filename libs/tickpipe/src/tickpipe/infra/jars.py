"""Kafka broker jars resolved once from Maven Central into a cache folder."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tickpipe.infra._process import InfraError

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
_MARKER = ".complete"
_POM_RELATIVE = Path("deploy/kafka/pom.xml")

# Same content as deploy/kafka/pom.xml, for a tickpipe installed outside the repository.
FALLBACK_POM = f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.tickpipe</groupId>
  <artifactId>tickpipe-local-kafka</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <properties>
    <kafka.version>{KAFKA_VERSION}</kafka.version>
    <log4j.version>{LOG4J_VERSION}</log4j.version>
  </properties>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>org.apache.logging.log4j</groupId>
        <artifactId>log4j-bom</artifactId>
        <version>${{log4j.version}}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>${{kafka.version}}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-api</artifactId>
    </dependency>
  </dependencies>
</project>
"""


def cache_root() -> Path:
    return Path(os.environ.get("TICKPIPE_CACHE_DIR") or Path.home() / ".cache" / "tickpipe")


def kafka_home() -> Path:
    return cache_root() / f"kafka-{KAFKA_VERSION}"


def repo_pom() -> Path | None:
    """deploy/kafka/pom.xml of the checkout this module runs from, if any."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / _POM_RELATIVE
        if candidate.is_file():
            return candidate
    return None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Parallel test workers share the cache: one resolves, the others wait and reuse.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_kafka_jars(timeout_s: float = 900.0) -> Path:
    """The folder of broker jars (a `-cp '<dir>/*'` classpath), resolving it if needed."""
    home = kafka_home()
    libs = home / "libs"
    marker = home / _MARKER
    if marker.is_file():
        return libs
    with _locked(home / ".lock"):
        if marker.is_file():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError("Maven (`mvn`) is needed once to fetch the Kafka jars: install it")
        # Run Maven on a copy in the cache so it writes nothing into the checkout.
        pom = home / "pom.xml"
        source = repo_pom()
        if source is not None:
            shutil.copyfile(source, pom)
        else:
            pom.write_text(FALLBACK_POM)
        partial = home / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise InfraError(f"Maven took over {timeout_s:.0f}s fetching Kafka jars") from exc
        jars = sorted(p.name for p in partial.glob("*.jar"))
        if done.returncode != 0 or not any(j.startswith("kafka_2.13-") for j in jars):
            output = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise InfraError(f"Maven could not fetch Kafka {KAFKA_VERSION} jars:\n{output}")
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        # Written last: a copy interrupted before this line is redone on the next call.
        marker.write_text("\n".join(jars) + "\n")
    return libs


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise InfraError("Java 17+ (`java`) is needed to run the local Kafka broker")
    return java
