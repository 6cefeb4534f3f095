"""Transport security settings -> client options, in one place each (tickpipe.bus.security for
Kafka, tickpipe.cache.redis for Redis): what every client gets, what is refused at start (in
one line naming the setting, never echoing a secret), librdkafka's log lines collapsed; and
the ACLs `tickpipe infra up --secure` derives from the service specs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from tickpipe.app import load_specs
from tickpipe.bus import kafka as kafka_module
from tickpipe.bus.admin import _judge
from tickpipe.bus.kafka import KafkaBus
from tickpipe.bus.security import (
    LibrdkafkaLog,
    SecurityConfigError,
    kafka_client_config,
)
from tickpipe.cache.redis import RedisSecurity
from tickpipe.infra.secure import (
    KafkaGrant,
    SecureEndpoints,
    SecureFiles,
    kafka_grants,
    principals,
    redis_acl,
)
from tickpipe.settings import PlatformSettings
from tickpipe.topics import TopicNames

SECRET = "SENTINEL-kafka-password-7f3a"
CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nSENTINELKEYBODY\n-----END PRIVATE KEY-----\n"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for var in list(os.environ):
        if var.startswith(("TICKPIPE_KAFKA_", "TICKPIPE_REDIS_")):
            monkeypatch.delenv(var)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {
        "password": tmp_path / "kafka.password",
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "client.pem",
        "key": tmp_path / "client.key",
    }
    out["password"].write_text(SECRET + "\n")
    out["ca"].write_bytes(CERT)
    out["cert"].write_bytes(CERT)
    out["key"].write_bytes(KEY)
    return out


def _error(**settings: Any) -> str:
    with pytest.raises(SecurityConfigError) as err:
        kafka_client_config(PlatformSettings(**settings), logger=False)
    message = str(err.value)
    assert "\n" not in message
    assert SECRET not in message and "SENTINELKEYBODY" not in message
    return message


# -- Kafka: what clients get ---------------------------------------------------------------


def test_kafka_config_when_nothing_set_is_plaintext_with_a_collapsing_logger() -> None:
    conf = kafka_client_config(PlatformSettings())
    assert isinstance(conf.pop("logger"), LibrdkafkaLog)
    assert conf == {"security.protocol": "PLAINTEXT"}


def test_kafka_config_when_env_names_sasl_ssl_then_scram_over_tls_with_the_password_read(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "TICKPIPE_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "TICKPIPE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "TICKPIPE_KAFKA_SASL_USERNAME": "feature",
        "TICKPIPE_KAFKA_SASL_PASSWORD_FILE": str(files["password"]),
        "TICKPIPE_KAFKA_SSL_CA_FILE": str(files["ca"]),
        "TICKPIPE_KAFKA_CONFIG": '{"socket.keepalive.enable": true, "debug": "security"}',
        "TICKPIPE_REDIS_PASSWORD_FILE": "",  # compose's unset `${VAR:-}`: no file
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = PlatformSettings()

    conf = kafka_client_config(settings, logger=False)

    assert conf == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "feature",
        "sasl.password": SECRET,  # the file's content, its newline dropped
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(files["ca"]),
        "socket.keepalive.enable": True,
        "debug": "security",
    }
    assert settings.redis_password_file is None
    assert SECRET not in repr(settings)


def test_kafka_config_when_mtls_then_client_certificate_and_key(files: dict[str, Path]) -> None:
    conf = kafka_client_config(
        PlatformSettings(
            kafka_security_protocol="SSL",
            kafka_ssl_ca_file=files["ca"],
            kafka_ssl_cert_file=files["cert"],
            kafka_ssl_key_file=files["key"],
        ),
        logger=False,
    )
    assert conf["ssl.certificate.location"] == str(files["cert"])
    assert conf["ssl.key.location"] == str(files["key"])
    assert "sasl.username" not in conf


def test_kafka_config_when_password_is_a_secret_setting_then_used_and_never_shown() -> None:
    settings = PlatformSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="risk",
        kafka_sasl_password=SecretStr(SECRET),
    )
    assert kafka_client_config(settings, logger=False)["sasl.password"] == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


def test_kafka_config_when_plain_over_sasl_plaintext_then_warns(
    caplog: pytest.LogCaptureFixture, files: dict[str, Path]
) -> None:
    settings = PlatformSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password_file=files["password"],
    )
    with caplog.at_level(logging.WARNING):
        kafka_client_config(settings, logger=False)
    assert "clear text" in caplog.text
    assert SECRET not in caplog.text


# -- Kafka: what is refused ----------------------------------------------------------------


def test_kafka_config_when_sasl_without_credentials_then_one_line_naming_them() -> None:
    message = _error(kafka_security_protocol="SASL_SSL")
    assert "TICKPIPE_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs credentials" in message
    assert "TICKPIPE_KAFKA_SASL_USERNAME" in message
    assert "TICKPIPE_KAFKA_SASL_PASSWORD_FILE" in message
    assert "TICKPIPE_KAFKA_SASL_USERNAME" in _error(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_password=SecretStr(SECRET)
    )


def test_kafka_config_when_both_password_sources_then_refused(files: dict[str, Path]) -> None:
    assert "set only one of" in _error(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="u",
        kafka_sasl_password=SecretStr(SECRET),
        kafka_sasl_password_file=files["password"],
    )


@pytest.mark.parametrize(
    ("field", "content", "expected"),
    [
        ("kafka_sasl_password_file", None, "no such file"),
        ("kafka_sasl_password_file", b"  \n", "the file is empty"),
        ("kafka_ssl_ca_file", None, "no such file"),
        ("kafka_ssl_ca_file", b"not a certificate " + SECRET.encode(), "no PEM certificate"),
        ("kafka_ssl_key_file", CERT, "no PEM private key"),
    ],
)
def test_kafka_config_when_a_file_is_missing_or_wrong_then_one_line_naming_it(
    files: dict[str, Path], tmp_path: Path, field: str, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "given"
    if content is not None:
        path.write_bytes(content)
    settings: dict[str, Any] = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": "u",
        "kafka_sasl_password_file": files["password"],
        "kafka_ssl_cert_file": files["cert"],
        "kafka_ssl_key_file": files["key"],
        field: path,
    }
    message = _error(**settings)
    assert message.startswith(f"TICKPIPE_{field.upper()}: {path}: {expected}")


def test_kafka_config_when_a_directory_is_given_as_a_file_then_refused(tmp_path: Path) -> None:
    message = _error(kafka_security_protocol="SSL", kafka_ssl_ca_file=tmp_path)
    assert message == f"TICKPIPE_KAFKA_SSL_CA_FILE: {tmp_path}: not a file"


def test_kafka_config_when_settings_contradict_the_protocol_then_refused(
    files: dict[str, Path],
) -> None:
    assert "uses no TLS" in _error(kafka_ssl_ca_file=files["ca"])
    assert "uses no SASL" in _error(kafka_security_protocol="SSL", kafka_sasl_username="u")
    assert "needs both" in _error(kafka_security_protocol="SSL", kafka_ssl_cert_file=files["cert"])


@pytest.mark.parametrize(
    "key",
    ["sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem",
     "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config"],
)  # fmt: skip
def test_kafka_config_when_extra_keys_carry_a_secret_then_refused(key: str) -> None:
    message = _error(kafka_config={key: SECRET})
    assert f"TICKPIPE_KAFKA_CONFIG may not hold {key!r}" in message


@pytest.mark.parametrize(
    ("key", "instead"),
    [
        ("bootstrap.servers", "TICKPIPE_KAFKA_BOOTSTRAP"),
        ("security.protocol", "TICKPIPE_KAFKA_SECURITY_PROTOCOL"),
        ("ssl.ca.location", "TICKPIPE_KAFKA_SSL_CA_FILE"),
        ("group.id", "set per client"),
    ],
)
def test_kafka_config_when_extra_keys_have_a_setting_of_their_own_then_refused(
    key: str, instead: str
) -> None:
    message = _error(kafka_config={key: "x"})
    assert f"may not set {key!r}" in message and instead in message


# -- Kafka: every client gets the keys ------------------------------------------------------


class _Client:
    confs: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, conf: dict[str, Any]) -> None:
        _Client.confs.append(conf)

    def subscribe(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_kafka_bus_when_given_a_client_config_then_every_client_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _Client.confs = []
    monkeypatch.setattr(kafka_module, "_RdProducer", _Client)
    monkeypatch.setattr(kafka_module, "Consumer", _Client)
    monkeypatch.setattr(kafka_module.KafkaReader, "start", lambda *a: None)
    tails: list[dict[str, Any]] = []
    monkeypatch.setattr(kafka_module, "_read_tail", lambda conf, *a: tails.append(conf) or [])
    security = {"security.protocol": "SASL_SSL", "sasl.username": "u", "sasl.password": SECRET}
    bus = KafkaBus("h:1", TopicNames("ns"), client_config=security)

    bus.producer("p")
    bus.link(group="g", topics=["t"], client_id="l")
    bus.reader(["t"], from_ms=None, client_id="r")
    bus.tail(["t"], count=1, client_id="tl")

    confs = [*_Client.confs, *tails]
    assert len(confs) == 5  # producer; the link's producer and consumer; reader; tail
    for conf in confs:
        assert {k: conf[k] for k in security} == security
        assert conf["bootstrap.servers"] == "h:1"
    assert [c["client.id"] for c in confs] == ["p", "l", "l", "r", "tl"]


# -- librdkafka's log lines ---------------------------------------------------------------


def test_librdkafka_log_when_a_line_repeats_then_logged_once_and_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr("tickpipe.bus.security.time.monotonic", lambda: now[0])
    adapter = LibrdkafkaLog(window_s=30.0)
    line = "[thrd:main]: sasl_ssl://h:{}/1: SASL auth error (after {}ms in state AUTH_REQ)"
    with caplog.at_level(logging.INFO, logger="tickpipe.kafka.client"):
        for i in range(50):
            adapter.log(
                logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", line.format(9, i)
            )
        adapter.log(logging.INFO, "%s [%s] %s", "STATE", "rdkafka#producer-1", "another line")
        now[0] += 31
        adapter.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", line.format(9, 7))
    records = caplog.records
    assert [r.levelno for r in records] == [logging.ERROR, logging.INFO, logging.ERROR]
    assert records[0].getMessage().startswith("librdkafka: sasl_ssl://h:9/1: SASL")
    assert records[0].facility == "FAIL" and records[0].rd_thread == "main"
    assert records[2].repeated == 49


# -- the start-up check's verdicts ----------------------------------------------------------


def _lines(*texts: str) -> list[tuple[str, str, str]]:
    from tickpipe.bus.admin import _reason

    return [("log", t, _reason(t)) for t in texts]


def test_check_verdicts_when_librdkafka_reports_then_the_cause_in_one_line() -> None:
    conf = {"security.protocol": "SASL_SSL", "sasl.username": "feature"}
    prefix = "[thrd:sasl_ssl://127.0.0.1:9094/bootstrap]: sasl_ssl://127.0.0.1:9094/bootstrap: "
    cases = {
        "SASL authentication error: Authentication failed during authentication due to "
        "invalid credentials with SASL mechanism SCRAM-SHA-512 (after 308ms in state "
        "AUTH_REQ)": "authentication refused: SASL authentication error: Authentication failed",
        "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker "
        "certificate could not be verified (after 3ms in state SSL_HANDSHAKE)": (
            "the broker's certificate is not trusted"
        ),
        "Receive failed: error:0A000412:SSL routines::ssl/tls alert bad certificate: SSL alert "
        "number 42 (after 3ms in state APIVERSION_QUERY)": (
            "the broker refused the client certificate (mTLS)"
        ),
        "SSL handshake failed: error:0A00010B:SSL routines::wrong version number (after 1ms "
        "in state SSL_HANDSHAKE)": "TLS failed: SSL handshake failed",
    }
    for text, expected in cases.items():
        verdict = _judge(_lines(prefix + text), conf)
        assert verdict is not None and verdict.fatal, text
        assert verdict.message.startswith(expected), verdict.message
        assert "thrd:" not in verdict.message and "after 3ms" not in verdict.message

    closed = (
        prefix + "Disconnected: connection closed by peer (after 2ms in state APIVERSION_QUERY)"
    )
    assert _judge(_lines(closed), {}) is None  # once proves nothing
    verdict = _judge(_lines(closed, closed), {})
    assert verdict is not None and verdict.fatal
    assert "closed every connection during APIVERSION_QUERY" in verdict.message
    assert "speak PLAINTEXT" in verdict.message

    refused = _judge(
        _lines(prefix + "Connect to ipv4#127.0.0.1:9094 failed: Connection refused"), conf
    )
    assert refused is not None and not refused.fatal  # an outage: the client retries
    assert _judge(_lines(prefix + "Connect to ipv4#127.0.0.1:9094 failed"), conf) is None


# -- Redis --------------------------------------------------------------------------------


def test_redis_security_when_tls_and_an_acl_user_then_options_and_credentials_from_the_file(
    files: dict[str, Path],
) -> None:
    url, options = RedisSecurity(password_file=files["password"], ca_file=files["ca"]).connection(
        "rediss://feature@127.0.0.1:6380/0"
    )
    assert url == "rediss://127.0.0.1:6380/0"  # the user comes with the credentials
    provider = options.pop("credential_provider")
    assert options == {
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": str(files["ca"]),
    }
    assert provider.get_credentials() == ("feature", SECRET)
    files["password"].write_text("rotated\n")  # read again for each new connection
    assert provider.get_credentials() == ("feature", "rotated")


def test_redis_security_when_nothing_set_then_the_url_unchanged() -> None:
    assert RedisSecurity().connection("redis://127.0.0.1:6379/0") == (
        "redis://127.0.0.1:6379/0",
        {},
    )


@pytest.mark.parametrize(
    ("url", "settings", "expected"),
    [
        (f"redis://:{SECRET}@h:1/0", {}, "TICKPIPE_REDIS_URL holds a password"),
        ("rediss://risk@h:1/0", {}, "TICKPIPE_REDIS_PASSWORD_FILE"),
        ("redis://h:1/0", {"ca_file": "ca"}, "is not a rediss:// (TLS) URL"),
        ("rediss://h:1/0", {"cert_file": "cert"}, "needs both"),
        ("rediss://h:1/0", {"ca_file": "missing"}, "TICKPIPE_REDIS_CA_FILE"),
    ],
)
def test_redis_security_when_settings_cannot_work_then_one_line(
    files: dict[str, Path], tmp_path: Path, url: str, settings: dict[str, str], expected: str
) -> None:
    paths = {"ca": files["ca"], "cert": files["cert"], "missing": tmp_path / "missing"}
    given = {k: paths[v] for k, v in settings.items()}
    with pytest.raises(SecurityConfigError) as err:
        RedisSecurity(**given).connection(url)
    assert expected in str(err.value)
    assert SECRET not in str(err.value) and "\n" not in str(err.value)


# -- the ACLs of `infra up --secure` --------------------------------------------------------


def _allowed(grants: list[KafkaGrant], who: str, operation: str, topic: str) -> bool:
    return any(
        g.principal == who
        and g.resource == "TOPIC"
        and g.name == topic
        and g.operation == operation
        for g in grants
    )


def test_kafka_grants_when_derived_from_specs_then_each_service_only_its_own() -> None:
    specs = list(load_specs().values())
    grants = kafka_grants(specs, "ns")
    t = TopicNames("ns").physical

    for spec in specs:
        for topic in spec.inputs:
            assert _allowed(grants, spec.name, "READ", t(topic)), (spec.name, topic)
        for topic in spec.outputs:
            assert _allowed(grants, spec.name, "WRITE", t(topic)), (spec.name, topic)
    assert not _allowed(grants, "feature", "WRITE", t("orders.v1"))
    assert not _allowed(grants, "feature", "READ", t("executions.v1"))
    assert _allowed(grants, "risk", "READ", t("risk.decisions.v1"))  # its history
    assert {g.principal for g in grants if g.name == t("dlq.v1") and g.operation == "READ"} == {
        "ingest"
    }
    transactional = {g.principal: g.name for g in grants if g.resource == "TRANSACTIONAL_ID"}
    assert transactional == {"risk": "ns.risk-", "execution": "ns.execution-"}
    groups = {
        (g.principal, g.name, g.pattern, g.operation) for g in grants if g.resource == "GROUP"
    }
    assert ("feature", "ns.feature", "LITERAL", "READ") in groups
    assert ("ingest", "ns.ingest", "LITERAL", "READ") not in groups  # a source: no group
    assert ("api", "ns.api-", "PREFIXED", "READ") in groups
    assert not any(g.principal == "admin" for g in grants)  # a super user
    assert not _allowed(grants, "api", "WRITE", t("orders.v1"))


def test_redis_acl_when_derived_then_default_off_and_each_user_its_keys() -> None:
    specs = list(load_specs().values())
    hashes = {p: f"{i:064x}" for i, p in enumerate(principals(specs))}
    lines = {line.split()[1]: line for line in redis_acl(specs, "", hashes)}

    assert lines["default"].startswith("user default off")
    assert "~tickpipe:features:* ~tickpipe:snapshot:feature " in lines["feature"]
    assert "~tickpipe:pnl:*" in lines["risk"] and "~tickpipe:pnl:*" not in lines["feature"]
    assert "-@dangerous" in lines["feature"] and "-scan" in lines["feature"]
    assert "%R~tickpipe:* " in lines["api"] and "+@write" not in lines["api"]
    assert "SENTINEL" not in "".join(lines.values())
    assert f"#{hashes['risk']}" in lines["risk"]  # a hash, never the password


def test_secure_endpoints_when_exported_then_files_only_never_a_secret(tmp_path: Path) -> None:
    files = SecureFiles(tmp_path, ("feature", "api", "admin"))
    found = SecureEndpoints("127.0.0.1:1", "127.0.0.1:2", "rediss://127.0.0.1:3/0", files, "ns")
    env = found.env("feature")
    assert env["TICKPIPE_KAFKA_SASL_USERNAME"] == "feature"
    assert env["TICKPIPE_KAFKA_SASL_PASSWORD_FILE"].endswith("secrets/kafka-feature.password")
    assert env["TICKPIPE_REDIS_URL"] == "rediss://feature@127.0.0.1:3/0"
    assert env["TICKPIPE_TOPIC_NAMESPACE"] == "ns"
    assert not any("PASSWORD" in k and not k.endswith("_FILE") for k in env)
    mtls = found.env("feature", mtls=True)
    assert mtls["TICKPIPE_KAFKA_SECURITY_PROTOCOL"] == "SSL"
    assert mtls["TICKPIPE_KAFKA_BOOTSTRAP"] == "127.0.0.1:2"
    assert "TICKPIPE_KAFKA_SASL_USERNAME" not in mtls
