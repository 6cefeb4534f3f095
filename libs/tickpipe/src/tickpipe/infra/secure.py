"""`tickpipe infra up --secure`: the local Kafka broker and Redis with transport security.

- A CA generated on the spot (tickpipe.infra.tls) signs the broker's, Redis' and one client
  certificate per principal; its key is never written down.
- Kafka: SASL_SSL (SCRAM-SHA-512, TLS 1.3 only) on the bootstrap port, mTLS (a client
  certificate required, its CN the principal) on a second port, the controller listener
  over mTLS; a SCRAM user per principal, created by Kafka's own `kafka-storage format
  --add-scram`; the KRaft StandardAuthorizer with ACLs derived from each service's spec:
  it reads its inputs (and the history it rebuilds from), writes its outputs, uses its own
  consumer group and transactional ids, and nothing else. `admin` (topic creation, ACLs)
  and `broker` are super users.
- Redis: TLS only (`port 0`), TLS 1.3, `default` off, one ACL user per principal limited
  to its own keys under the namespace prefix and to read/write commands (nothing
  `@dangerous`); the API reads everything and writes nothing.
- Passwords are random, written `0600` under `<state>/secrets/`, and exported as `*_FILE`
  settings: the printed exports never hold a secret.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tickpipe.infra._process import InfraError, terminate
from tickpipe.infra.kafka_local import MAIN_CLASS, BrokerSecurity, LocalKafka, kafka_ready
from tickpipe.infra.manager import (
    _locked,
    _pick_port,
    _read_state,
    _resolve,
    _running,
    _write_state,
)
from tickpipe.infra.redis_local import PROCESS_NAME, LocalRedis, RedisTls, redis_ready
from tickpipe.infra.tls import CertificateAuthority, write_private, write_public
from tickpipe.topics import (
    CONTROL,
    DLQ,
    EXECUTIONS,
    RISK_DECISIONS,
    SIGNALS,
    TopicNames,
)

DEFAULT_SECURE_STATE_DIR = Path(".tickpipe/infra-secure")
DEFAULT_PORTS = {"kafka": 9094, "mtls": 9095, "controller": 9096, "redis": 6380}
API = "api"
ADMIN = "admin"
BROKER = "broker"
MECHANISM = "SCRAM-SHA-512"

# What a service reads: its inputs, and back what it writes, with group-less readers: the
# history it rebuilds its state from at start (risk, execution: bus/history.py) and the
# tail ingest resumes from (tickpipe_ingest.resume). Dead letters hold other topics' bytes,
# so reading dlq.v1 back is granted by name only: to ingest, whose resume point counts its
# own dead letters. A read outside these is refused at start, which
# tests/integration/test_secure_transport.py would show.
EXTRA_READS: Mapping[str, tuple[str, ...]] = {"ingest": (DLQ,)}
# The operator API (not a ServiceSpec): its live feed (tickpipe_api.consumer.TOPICS) and
# `tickpipe signals tail` read; its control publisher and `tickpipe control` write control.v1.
API_READS = (EXECUTIONS, SIGNALS, RISK_DECISIONS)
API_WRITES = (CONTROL,)
API_READER_PREFIXES = ("tickpipe-signals-tail",)
# Cache keys each service writes, under the namespace prefix (besides `snapshot:<group>` of
# every stream service): feature's latest vectors, inference's latest signals, risk's books
# and operator state (tickpipe_risk.store), execution's live kill-switch flag.
CACHE_KEYS: Mapping[str, tuple[str, ...]] = {
    "feature": ("features:*",),
    "inference": ("signals:*",),
    "risk": ("risk:*", "positions:*", "pnl:*", "strategy_positions:*", "strategy_pnl:*"),
    "execution": ("execution:*",),
}
# Commands: reads and writes of single keys and the connection's own; never @dangerous
# (FLUSHALL, KEYS, CONFIG, DEBUG, ...), @admin, scripts or pub/sub. SCAN names every key
# whatever the key patterns say, so only the API (which lists keys) may run it.
_WRITER_COMMANDS = "-@all +@read +@write +@connection -@dangerous -@admin -scan"
_READER_COMMANDS = "-@all +@read +@connection -@dangerous -@admin"


class SpecLike(Protocol):
    """What the ACLs are derived from (tickpipe.service.ServiceSpec)."""

    @property
    def name(self) -> str: ...
    @property
    def inputs(self) -> tuple[str, ...]: ...
    @property
    def outputs(self) -> tuple[str, ...]: ...
    @property
    def transactional(self) -> bool: ...


@dataclass(frozen=True, order=True)
class KafkaGrant:
    """One ALLOW ACL: `principal` may `operation` on a resource (any host)."""

    principal: str
    resource: str  # TOPIC | GROUP | TRANSACTIONAL_ID
    name: str
    pattern: str  # LITERAL | PREFIXED
    operation: str  # READ | WRITE | DESCRIBE


def _group(namespace: str, name: str) -> str:
    return f"{namespace}.{name}" if namespace else name  # PlatformSettings.group


def kafka_grants(specs: Iterable[SpecLike], namespace: str = "") -> list[KafkaGrant]:
    """Every ACL the pipeline needs in `namespace`, derived from the services' specs."""
    names = TopicNames(namespace)
    grants: set[KafkaGrant] = set()

    def topics(who: str, operation: str, logical: Iterable[str]) -> None:
        for t in logical:
            grants.add(KafkaGrant(who, "TOPIC", names.physical(t), "LITERAL", operation))

    for spec in specs:
        who, group = spec.name, _group(namespace, spec.name)
        read_back = [t for t in spec.outputs if t != DLQ]
        topics(who, "READ", (*spec.inputs, *read_back, *EXTRA_READS.get(who, ())))
        topics(who, "WRITE", spec.outputs)
        if spec.inputs:  # a stream service: its consumer group (sources have none)
            grants.add(KafkaGrant(who, "GROUP", group, "LITERAL", "READ"))
        # Group-less readers (history, resume) name a group `<service>-...` that they never
        # join; librdkafka still looks up its coordinator, which takes DESCRIBE.
        grants.add(KafkaGrant(who, "GROUP", f"{who}-", "PREFIXED", "DESCRIBE"))
        if spec.transactional:  # transactional ids are f"{group}-{instance_id}"
            grants.add(KafkaGrant(who, "TRANSACTIONAL_ID", f"{group}-", "PREFIXED", "WRITE"))
    topics(API, "READ", API_READS)
    topics(API, "WRITE", API_WRITES)
    grants.add(KafkaGrant(API, "GROUP", _group(namespace, "api-"), "PREFIXED", "READ"))
    for prefix in API_READER_PREFIXES:
        grants.add(KafkaGrant(API, "GROUP", prefix, "PREFIXED", "DESCRIBE"))
    return sorted(grants)


def redis_acl(
    specs: Iterable[SpecLike], namespace: str, password_hashes: Mapping[str, str]
) -> list[str]:
    """The lines of Redis' ACL file: `default` off, `admin` all, one user per principal.
    `password_hashes`: principal -> SHA-256 hex of its password (the file holds no secret)."""
    prefix = namespace or "tickpipe"  # as tickpipe.app.make_cache names the cache's keys

    def user(name: str, rules: str) -> str:
        return f"user {name} on #{password_hashes[name]} resetkeys resetchannels {rules}"

    lines = ["user default off resetkeys resetchannels -@all"]
    lines.append(f"user {ADMIN} on #{password_hashes[ADMIN]} ~* &* +@all")
    for spec in specs:
        keys = [f"~{prefix}:{pattern}" for pattern in CACHE_KEYS.get(spec.name, ())]
        if spec.inputs:  # a stream service's snapshot, or its partitions' (tickpipe.state)
            snapshot = f"~{prefix}:snapshot:{_group(namespace, spec.name)}"
            keys += [snapshot, f"{snapshot}:p*"]
        lines.append(user(spec.name, " ".join([*keys, _WRITER_COMMANDS])))
    lines.append(user(API, f"%R~{prefix}:* {_READER_COMMANDS}"))
    return lines


# -- files ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecureFiles:
    """Where a secure pair keeps its certificates, keys and passwords (under `root`), for
    each principal: the services, `api` and `admin`."""

    root: Path
    principals: tuple[str, ...] = ()

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def ca(self) -> Path:
        return self.tls_dir / "ca.pem"

    def cert(self, name: str) -> Path:
        """`name`'s certificate chain (leaf, then the CA)."""
        return self.tls_dir / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.tls_dir / f"{name}.key"

    @property
    def broker_keystore(self) -> Path:
        """The broker's key and chain in one PEM file, as Kafka's PEM key store reads it."""
        return self.tls_dir / "broker-keystore.pem"

    def kafka_password(self, name: str) -> Path:
        return self.secrets_dir / f"kafka-{name}.password"

    def redis_password(self, name: str) -> Path:
        return self.secrets_dir / f"redis-{name}.password"

    @property
    def _complete(self) -> Path:
        return self.root / ".secrets-complete"

    def ensure(self, password: Callable[[], str] | None = None) -> SecureFiles:
        """Generates everything once (`password()` makes each password; default: 256 random
        bits); later calls keep what exists. `down --purge` deletes it all: the next `up`
        generates new certificates and passwords (the local way to rotate every secret)."""
        wanted = "\n".join(self.principals) + "\n"
        if self._complete.is_file():
            if self._complete.read_text() != wanted:
                raise InfraError(
                    f"{self.root} was set up for other principals than {', '.join(self.principals)}"
                    ": `tickpipe infra down --secure --purge` and up again"
                )
            return self
        make = password or (lambda: secrets.token_urlsafe(32))
        ca = CertificateAuthority()
        write_public(self.ca, ca.cert_pem)
        for name in (BROKER, "redis", *self.principals):
            issued = ca.issue(name, server=name in (BROKER, "redis"))
            write_public(self.cert(name), issued.cert_pem)
            write_private(self.key(name), issued.key_pem)
            if name == BROKER:
                write_private(self.broker_keystore, issued.key_pem + issued.cert_pem)
        for name in self.principals:
            write_private(self.kafka_password(name), make())
            write_private(self.redis_password(name), make())
        self._complete.write_text(wanted)  # last: an interrupted run starts over
        return self

    def password_hash(self, name: str) -> str:
        return hashlib.sha256(self.redis_password(name).read_text().strip().encode()).hexdigest()

    def private_files(self) -> list[Path]:
        """Every key and password file (what must never leak)."""
        keys = [self.key(n) for n in (BROKER, "redis", *self.principals)]
        passwords = [self.kafka_password(n) for n in self.principals]
        redis = [self.redis_password(n) for n in self.principals]
        return [*keys, self.broker_keystore, *passwords, *redis]


# -- endpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecureEndpoints:
    kafka_bootstrap: str  # SASL_SSL
    kafka_mtls_bootstrap: str  # SSL with a client certificate
    redis_url: str  # rediss://host:port/0 (no user)
    files: SecureFiles
    namespace: str = ""

    def redis_user_url(self, principal: str) -> str:
        return self.redis_url.replace("rediss://", f"rediss://{principal}@", 1)

    def env(self, principal: str = ADMIN, *, mtls: bool = False) -> dict[str, str]:
        """The settings that make a tickpipe process connect as `principal` (SCRAM over
        SASL_SSL, or its certificate over mTLS); secrets by file only."""
        if principal not in self.files.principals:
            known = ", ".join(self.files.principals)
            raise InfraError(f"unknown principal {principal!r}; one of {known}")
        f = self.files
        env = {"TICKPIPE_BUS": "kafka"}
        if mtls:
            env |= {
                "TICKPIPE_KAFKA_BOOTSTRAP": self.kafka_mtls_bootstrap,
                "TICKPIPE_KAFKA_SECURITY_PROTOCOL": "SSL",
                "TICKPIPE_KAFKA_SSL_CERT_FILE": str(f.cert(principal)),
                "TICKPIPE_KAFKA_SSL_KEY_FILE": str(f.key(principal)),
            }
        else:
            env |= {
                "TICKPIPE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
                "TICKPIPE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "TICKPIPE_KAFKA_SASL_MECHANISM": MECHANISM,
                "TICKPIPE_KAFKA_SASL_USERNAME": principal,
                "TICKPIPE_KAFKA_SASL_PASSWORD_FILE": str(f.kafka_password(principal)),
            }
        env |= {
            "TICKPIPE_KAFKA_SSL_CA_FILE": str(f.ca),
            "TICKPIPE_REDIS_URL": self.redis_user_url(principal),
            "TICKPIPE_REDIS_PASSWORD_FILE": str(f.redis_password(principal)),
            "TICKPIPE_REDIS_CA_FILE": str(f.ca),
        }
        if self.namespace:
            env["TICKPIPE_TOPIC_NAMESPACE"] = self.namespace
        return env

    def admin_kafka_config(self) -> dict[str, Any]:
        """librdkafka keys for the admin principal (tickpipe.bus.security builds them)."""
        from tickpipe.bus.security import KafkaSecurity

        return KafkaSecurity(
            protocol="SASL_SSL",
            mechanism=MECHANISM,
            username=ADMIN,
            password_file=self.files.kafka_password(ADMIN),
            ca_file=self.files.ca,
        ).client_config()

    def admin_redis_options(self) -> dict[str, Any]:
        from tickpipe.cache.redis import RedisSecurity

        _, options = RedisSecurity(
            password_file=self.files.redis_password(ADMIN), ca_file=self.files.ca
        ).connection(self.redis_user_url(ADMIN))
        return options


# -- Kafka ACLs -----------------------------------------------------------------------------


def apply_kafka_acls(
    bootstrap: str,
    admin_config: Mapping[str, Any],
    grants: Sequence[KafkaGrant],
    timeout_s: float = 30.0,
) -> None:
    """Creates the ACLs (idempotently) as the admin principal and waits until the broker
    enforces them all (KRaft hands them to the broker through its metadata log)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    # log_level 3: errors only (not the INFO line librdkafka prints when a client goes).
    admin = AdminClient({**admin_config, "bootstrap.servers": bootstrap, "log_level": 3})
    bindings = [
        AclBinding(
            ResourceType[g.resource],
            g.name,
            ResourcePatternType[g.pattern],
            f"User:{g.principal}",
            "*",
            AclOperation[g.operation],
            AclPermissionType.ALLOW,
        )
        for g in grants
    ]
    try:
        for future in admin.create_acls(bindings, request_timeout=timeout_s).values():
            future.result(timeout_s)
        wanted = set(bindings)
        anything: Any = None  # a filter's None matches any name, principal or host
        every = AclBindingFilter(
            ResourceType.ANY,
            anything,
            ResourcePatternType.ANY,
            anything,
            anything,
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        deadline = time.monotonic() + timeout_s
        while not wanted <= set(admin.describe_acls(every).result(timeout_s)):
            if time.monotonic() > deadline:
                raise InfraError("the broker did not apply its ACLs in time")
            time.sleep(0.1)
    except KafkaException as exc:
        raise InfraError(f"creating Kafka ACLs failed: {exc}") from None


# -- up / status / down ---------------------------------------------------------------------


def service_specs() -> list[SpecLike]:
    """The installed services' specs, in pipeline order."""
    from tickpipe.app import load_specs

    return list(load_specs().values())


def principals(specs: Iterable[SpecLike]) -> tuple[str, ...]:
    """One per service, the API's and the admin's (topic creation, ACLs: a super user)."""
    names = tuple(s.name for s in specs)
    clash = {API, ADMIN, BROKER} & set(names)
    if clash:
        raise InfraError(f"a service may not be named {', '.join(sorted(clash))}")
    return (*names, API, ADMIN)


def up(
    state_dir: Path | str | None = None,
    *,
    kafka_port: int | None = None,
    mtls_port: int | None = None,
    controller_port: int | None = None,
    redis_port: int | None = None,
    namespace: str = "",
    timeout_s: float = 90.0,
    password: Callable[[], str] | None = None,
) -> SecureEndpoints:
    """Starts the secure pair (what is not already running and healthy) in `state_dir`,
    with the ACLs for `namespace`; returns its endpoints. `password`: see SecureFiles."""
    root = _resolve(state_dir if state_dir is not None else DEFAULT_SECURE_STATE_DIR)
    with _locked(root):
        state = _read_state(root)
        if state.get("kafka") and "secure" not in state:
            raise InfraError(f"{root} holds a plain pair: use another --state-dir")
        recorded = state.get("secure", {}).get("namespace", namespace)
        if recorded != namespace:
            raise InfraError(
                f"{root} serves namespace {recorded!r}, not {namespace!r}: "
                "`tickpipe infra down --secure --purge` first, or use another --state-dir"
            )
        specs = service_specs()
        files = SecureFiles(root, principals(specs)).ensure(password)
        state["secure"] = {"namespace": namespace, "principals": list(files.principals)}
        kafka = _ensure_kafka(root, state, files, kafka_port, mtls_port, controller_port, timeout_s)
        state["kafka"] = kafka
        _write_state(root, state)
        taken = {kafka["port"], kafka["mtls_port"], kafka["controller_port"]}
        state["redis"] = _ensure_redis(root, state, files, specs, namespace, redis_port, taken)
        _write_state(root, state)
        found = _endpoints(root, state)
        grants = kafka_grants(specs, namespace)
        apply_kafka_acls(found.kafka_bootstrap, found.admin_kafka_config(), grants)
        return found


def _endpoints(root: Path, state: Mapping[str, Any]) -> SecureEndpoints:
    secure = state.get("secure", {})
    return SecureEndpoints(
        kafka_bootstrap=state["kafka"]["bootstrap"],
        kafka_mtls_bootstrap=state["kafka"]["mtls_bootstrap"],
        redis_url=state["redis"]["url"],
        files=SecureFiles(root, tuple(secure.get("principals", ()))),
        namespace=secure.get("namespace", ""),
    )


def _ensure_kafka(
    root: Path,
    state: dict[str, Any],
    files: SecureFiles,
    port: int | None,
    mtls_port: int | None,
    controller_port: int | None,
    timeout_s: float,
) -> dict[str, Any]:
    entry = state.get("kafka")
    previous = entry if isinstance(entry, dict) else {}
    admin = SecureEndpoints("", "", "", files).admin_kafka_config()
    pid = _running(entry, MAIN_CLASS)
    if pid is not None:
        if kafka_ready(previous["bootstrap"], 10.0, admin):
            return previous
        terminate(pid, 30.0, MAIN_CLASS)  # alive but not serving: replace it
    chosen = _pick_port(port, "", previous.get("port"), DEFAULT_PORTS["kafka"], set())
    mtls = _pick_port(mtls_port, "", previous.get("mtls_port"), DEFAULT_PORTS["mtls"], {chosen})
    ctl = _pick_port(
        controller_port,
        "",
        previous.get("controller_port"),
        DEFAULT_PORTS["controller"],
        {chosen, mtls},
    )
    security = BrokerSecurity(
        mtls_port=mtls,
        ca_file=files.ca,
        keystore_file=files.broker_keystore,
        scram_users={n: files.kafka_password(n) for n in files.principals},
        super_users=(ADMIN, BROKER),
        admin_config=admin,
    )
    kafka = LocalKafka(root / "kafka", chosen, ctl, security=security)
    kafka.start(timeout_s)
    return {
        "pid": kafka.pid,
        "port": kafka.port,
        "mtls_port": mtls,
        "controller_port": kafka.controller_port,
        "bootstrap": kafka.bootstrap,
        "mtls_bootstrap": kafka.mtls_bootstrap,
        "log": str(kafka.log_path),
    }


def _ensure_redis(
    root: Path,
    state: dict[str, Any],
    files: SecureFiles,
    specs: Sequence[SpecLike],
    namespace: str,
    port: int | None,
    taken: set[int],
) -> dict[str, Any]:
    entry = state.get("redis")
    previous = entry if isinstance(entry, dict) else {}
    work = root / "redis"
    acl_file = work / "users.acl"
    hashes = {n: files.password_hash(n) for n in files.principals}
    write_private(acl_file, "\n".join(redis_acl(specs, namespace, hashes)) + "\n")
    pid = _running(entry, PROCESS_NAME)
    chosen = _pick_port(port, "", previous.get("port"), DEFAULT_PORTS["redis"], taken)
    if pid is not None:
        chosen = previous["port"]
    url = f"rediss://127.0.0.1:{chosen}/0"
    options = SecureEndpoints("", "", url, files).admin_redis_options()
    if pid is not None:
        if redis_ready(url, 3.0, **options):
            _reload_acl(url, options)  # the users as this build derives them
            return previous
        terminate(pid, 10.0, PROCESS_NAME)
    tls = RedisTls(
        cert_file=files.cert("redis"),
        key_file=files.key("redis"),
        ca_file=files.ca,
        acl_file=acl_file,
        admin_options=options,
    )
    server = LocalRedis(work, chosen, tls=tls)
    server.start(15.0)
    return {"pid": server.pid, "port": server.port, "url": server.url, "log": str(server.log_path)}


def _reload_acl(url: str, options: Mapping[str, Any]) -> None:
    import redis

    try:
        with redis.Redis.from_url(url, socket_timeout=5, **options) as client:
            client.acl_load()
    except redis.RedisError as exc:
        raise InfraError(f"redis could not reload its ACL file: {exc}") from None


def status(state_dir: Path | str | None = None) -> dict[str, Any]:
    """As tickpipe.infra.manager.status, probing over TLS as the admin principal."""
    root = _resolve(state_dir if state_dir is not None else DEFAULT_SECURE_STATE_DIR)
    state = _read_state(root)
    result: dict[str, Any] = {"state_dir": str(root), "secure": True}
    for name, needle in (("kafka", MAIN_CLASS), ("redis", PROCESS_NAME)):
        entry = state.get(name)
        info: dict[str, Any] = dict(entry) if isinstance(entry, dict) else {}
        pid = _running(entry, needle)
        info["pid"] = pid
        info["running"] = pid is not None
        info["healthy"] = False
        result[name] = info
    if result["kafka"]["running"] and result["redis"]["running"]:
        found = _endpoints(root, state)
        result["namespace"] = found.namespace
        result["kafka"]["healthy"] = kafka_ready(
            found.kafka_bootstrap, 3.0, found.admin_kafka_config()
        )
        result["redis"]["healthy"] = redis_ready(
            found.redis_url, 3.0, **found.admin_redis_options()
        )
    return result


def endpoints(state_dir: Path | str | None = None) -> SecureEndpoints | None:
    root = _resolve(state_dir if state_dir is not None else DEFAULT_SECURE_STATE_DIR)
    state = _read_state(root)
    if "secure" not in state or "kafka" not in state or "redis" not in state:
        return None
    return _endpoints(root, state)


def down(state_dir: Path | str | None = None, *, purge: bool = False) -> dict[str, int | None]:
    """Stops both; `purge` also deletes their data and every certificate, key and password
    (the next `up` generates new ones: that is how the local secrets rotate)."""
    from tickpipe.infra import manager

    root = _resolve(state_dir if state_dir is not None else DEFAULT_SECURE_STATE_DIR)
    stopped = manager.down(root, purge=purge)
    if purge:
        with _locked(root):
            files = SecureFiles(root)
            shutil.rmtree(files.tls_dir, ignore_errors=True)
            shutil.rmtree(files.secrets_dir, ignore_errors=True)
            files._complete.unlink(missing_ok=True)
            state = _read_state(root)
            state["secure"] = {}  # still a secure pair's folder; namespace and files anew
            _write_state(root, state)
    return stopped
