"""Secure transport against the real servers (`tickpipe infra up --secure`, started for this
module): Kafka 4.1 over SASL_SSL (SCRAM-SHA-512, TLS 1.3 only) and mTLS with the KRaft
StandardAuthorizer and ACLs per service; Redis over TLS only with an ACL user per service.

- The five services and the operator API, each as its own principal, run end to end and
  produce fills; `signals tail` and `tickpipe control` work over the same settings.
- Refused, each at start and in one line: no credentials, a wrong password, a plaintext
  client on the TLS port, a client offering TLS 1.2 only, a client certificate from another
  CA; the feature principal writing orders.v1 or reading executions.v1; a Redis client
  without TLS, a wrong Redis password, a service touching another's keys.
- No password and no private key ever shows in the service logs (which include failed
  logins), the dead letters or any topic, Redis, the HTTP answers, or the servers' logs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tests.integration.secure import NS, secure_pair
from tests.polling import wait_until
from tickpipe.app import make_cache, make_kafka_bus
from tickpipe.bus.base import BusError, OutRecord
from tickpipe.bus.history import read_history
from tickpipe.bus.kafka import KafkaBus
from tickpipe.cache.redis import RedisCache, RedisSecurity, check_redis
from tickpipe.clock import LiveClock
from tickpipe.infra import free_port
from tickpipe.infra.secure import SecureEndpoints
from tickpipe.infra.tls import CertificateAuthority, pem_body_lines, write_private, write_public
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import EVENT_TYPE
from tickpipe.settings import PlatformSettings
from tickpipe.topics import EXECUTIONS, FEATURES, ORDERS, TOPICS, TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
RECORDS = 16_000
SERVICES = ["feature", "inference", "risk", "execution"]
WRONG = "SENTINEL-wrong-password-0c9e41"
JWT_KEY = "secure-transport-test-jwt-key-" + "5e" * 24


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureEndpoints]:
    """A secure Kafka broker and Redis for this module, topics created as `admin`."""
    yield from secure_pair(tmp_path_factory)


def _settings(found: SecureEndpoints, principal: str, **changes: Any) -> PlatformSettings:
    env = {k.removeprefix("TICKPIPE_").lower(): v for k, v in found.env(principal).items()}
    return PlatformSettings(**{**env, **changes})


def _secrets(found: SecureEndpoints) -> list[str]:
    """Every password (and the wrong one tried) and every line of every private key."""
    out = [WRONG]
    for path in found.files.private_files():
        text = path.read_text()
        if "PRIVATE KEY" in text:
            out += [line for line in pem_body_lines(text.encode()) if len(line) >= 16]
        else:
            out.append(text.strip())
    return out


def _leaks(text: str | bytes, secrets: list[str]) -> list[str]:
    data = text.decode(errors="replace") if isinstance(text, bytes) else text
    return [s[:6] + "…" for s in secrets if s in data]


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:  # not listening yet
        return 0, b""


def _fills(found: SecureEndpoints, want: int, timeout_s: float) -> int:
    bus = KafkaBus(found.kafka_bootstrap, TopicNames(NS), client_config=found.admin_kafka_config())
    link = bus.link(group=f"{uuid.uuid4().hex}.check", topics=[EXECUTIONS], client_id="check")
    fills, deadline = 0, time.monotonic() + timeout_s
    try:
        while fills < want and time.monotonic() < deadline:
            for r in link.poll(500, 0.5):
                if (
                    r.header(EVENT_TYPE) == b"execution"
                    and orjson.loads(r.value)["last_qty"] != "0"
                ):
                    fills += 1
    finally:
        link.close()
    return fills


def _run(
    env: dict[str, str], *argv: str, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickpipe.cli", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _failed_logins(
    found: SecureEndpoints, base: dict[str, str], tmp_path: Path
) -> tuple[list[threading.Thread], dict[str, subprocess.CompletedProcess[str]]]:
    """Two services started with a wrong password, beside the pipeline: feature's Kafka
    password, inference's Redis one. They run in threads; their results land in the dict."""
    wrong = tmp_path / "wrong.password"
    wrong.write_text(WRONG)
    kafka = {**found.env("feature"), "TICKPIPE_KAFKA_SASL_PASSWORD_FILE": ""}
    kafka["TICKPIPE_KAFKA_SASL_PASSWORD"] = WRONG
    redis_env = {**found.env("inference"), "TICKPIPE_REDIS_PASSWORD_FILE": str(wrong)}
    runs = {"kafka": ("feature", kafka), "redis": ("inference", redis_env)}
    done: dict[str, subprocess.CompletedProcess[str]] = {}

    def run(what: str) -> None:
        service, env = runs[what]
        done[what] = _run({**base, **env}, "run", service)

    threads = [threading.Thread(target=run, args=(what,)) for what in runs]
    for t in threads:
        t.start()
    return threads, done


def _assert_failed_logins(done: dict[str, subprocess.CompletedProcess[str]], logs: Path) -> None:
    """Each failed login ended its process at start, in one line naming the cause."""
    for what, expected in (("kafka", "authentication refused"), ("redis", "refused")):
        result = done[what]
        (logs / f"failed-{what}.log").write_text(result.stdout + result.stderr)
        assert result.returncode == 1, (what, result.stderr[-2000:])
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(what) and expected in last, result.stderr[-2000:]


def _start_api(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tickpipe.cli", "api", "serve"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _use_api(env: dict[str, str], port: int) -> list[bytes]:
    """The API's reads with a token from `tickpipe api token`; returns the bodies."""
    token = _run(env, "api", "token", "--sub", "ops", "--role", "operator").stdout.strip()
    bodies = []
    for path in ("/healthz", "/readyz", "/snapshot", "/pnl", "/positions", "/signals"):
        status, body = _get(f"http://127.0.0.1:{port}{path}", token)
        assert status == 200, (path, status, body[:300])
        bodies.append(body)
    assert orjson.loads(bodies[3])  # risk's PnL, read back from Redis by the api user
    return bodies


def _assert_no_refusals(logs: Path, names: list[str]) -> None:
    """No ACL or key pattern was missing: nothing was refused to the running pipeline."""
    for name in names:
        text = (logs / f"{name}.log").read_text()
        for refusal in ("NOPERM", "uthorization failed", "no permissions"):
            assert refusal not in text, (name, refusal)


def _assert_no_leaks(found: SecureEndpoints, logs: Path, http: list[bytes]) -> None:
    secrets = _secrets(found)
    assert len(secrets) > 20
    # Logs: the services', the API's, the failed logins', and the servers' own.
    for path in [
        *logs.glob("*.log"),
        found.files.root / "kafka" / "server.log",
        found.files.root / "redis" / "redis.log",
    ]:
        assert not _leaks(path.read_bytes(), secrets), path
    # Every record of every topic, dead letters included: keys, values and headers.
    admin_bus = KafkaBus(
        found.kafka_bootstrap, TopicNames(NS), client_config=found.admin_kafka_config()
    )
    records = list(read_history(admin_bus, [t.name for t in TOPICS], "admin-scan"))
    assert any(r.topic == EXECUTIONS for r in records)
    for r in records:
        blob = b"".join([r.key or b"", r.value, *(k.encode() + v for k, v in r.headers)])
        assert not _leaks(blob, secrets), (r.topic, r.offset)
    # Every key and value in Redis.
    client = redis.Redis.from_url(found.redis_url, **found.admin_redis_options())
    try:
        keys = list(client.scan_iter(count=1000))
        assert keys
        for key in keys:
            value = client.get(key) if client.type(key) == b"string" else client.dump(key)
            assert not _leaks(key + (value or b""), secrets), key
    finally:
        client.close()
    # HTTP: the API's answers and every service's /metrics.
    for body in http:
        assert not _leaks(body, secrets)


def _tail_and_control(found: SecureEndpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    """`signals tail` reads through the bus as the api principal; `tickpipe control` sends."""
    from tickpipe.cli import main
    from tickpipe_api.tail import signals

    tail = signals(make_kafka_bus(_settings(found, "api")), 0, threading.Event())
    assert next(tail).key
    tail.close()
    for key, value in found.env("api").items():
        monkeypatch.setenv(key, value)
    assert main(["control", "--reason", "test", "pause", "binance:ETH/USDT"]) == 0


def test_pipeline_when_every_service_has_its_own_principal_then_fills_and_no_secret_leaks(
    pair: SecureEndpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found, logs = pair, tmp_path / "logs"
    base = {
        "TICKPIPE_INGEST_FILE": str(SAMPLE),
        "TICKPIPE_INGEST_LIMIT": str(RECORDS),
        "TICKPIPE_LOG_LEVEL": "DEBUG",  # everything a service may say
    }
    procs = ServiceProcesses(base, logs, base_port=None)
    api_port = free_port()
    api_env = {
        **base,
        **found.env("api"),
        "TICKPIPE_API_JWT_KEY_FILE": str(write_private(tmp_path / "jwt.key", JWT_KEY)),
        "TICKPIPE_API_PORT": str(api_port),
    }
    threads, failed = _failed_logins(found, base, tmp_path)
    api: subprocess.Popen[bytes] | None = None
    http: list[bytes] = []
    try:
        for name in SERVICES:
            procs.start(name, found.env(name))
        targets = {n: f"http://127.0.0.1:{procs.ports[n]}" for n in SERVICES}
        api = _start_api(
            {**api_env, "TICKPIPE_API_HEALTH_TARGETS": json.dumps(targets)}, logs / "api.log"
        )
        procs.wait_ready(SERVICES)
        wait_until(
            lambda: _get(f"http://127.0.0.1:{api_port}/readyz")[0] == 200,
            lambda: (logs / "api.log").read_text()[-2000:],
            timeout_s=60,
        )
        procs.start("ingest", found.env("ingest"))
        fills = _fills(found, want=3, timeout_s=90)
        assert fills >= 3, {n: procs.log(n)[-1500:] for n in procs.procs}
        assert procs.procs["ingest"].wait(60) == 0, procs.log("ingest")[-2000:]
        http += _use_api(api_env, api_port)
        http += [procs.metrics(n).encode() for n in SERVICES]
        _tail_and_control(found, monkeypatch)
    finally:
        codes = procs.stop()
        if api is not None:
            api.terminate()
            api.wait(15)
        for t in threads:
            t.join(60)
    assert all(code == 0 for code in codes.values()), codes
    _assert_failed_logins(failed, logs)
    _assert_no_refusals(logs, [*SERVICES, "ingest", "api"])
    _assert_no_leaks(found, logs, http)


def _exit_message(settings: PlatformSettings) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(SystemExit) as err:
        make_kafka_bus(settings)
    return str(err.value.code), time.monotonic() - started


def test_kafka_when_credentials_or_transport_are_wrong_then_refused_in_one_line(
    pair: SecureEndpoints, tmp_path: Path
) -> None:
    found = pair
    # A certificate that names a real principal, from a CA the broker does not trust.
    impostor = CertificateAuthority("not tickpipe's CA").issue("feature", server=False)
    cert, key = write_public(tmp_path / "impostor.pem", impostor.cert_pem), tmp_path / "i.key"
    write_private(key, impostor.key_pem)
    ca = found.files.ca
    plain = found.kafka_bootstrap
    cases = {
        "no credentials": (
            PlatformSettings(
                kafka_bootstrap=plain, kafka_security_protocol="SASL_SSL", kafka_ssl_ca_file=ca
            ),
            "needs credentials",
        ),
        "wrong password": (
            _settings(found, "risk", kafka_sasl_password_file=None, kafka_sasl_password=WRONG),
            "authentication refused: SASL authentication error",
        ),
        "plaintext on the TLS port": (
            PlatformSettings(kafka_bootstrap=plain),
            "the broker closed every connection",
        ),
        "TLS without SASL on the SASL port": (
            PlatformSettings(
                kafka_bootstrap=plain, kafka_security_protocol="SSL", kafka_ssl_ca_file=ca
            ),
            "the broker closed every connection",
        ),
        "the broker's CA unknown": (
            _settings(found, "risk", kafka_ssl_ca_file=None),
            "the broker's certificate is not trusted",
        ),
        "client certificate of another CA": (
            _settings(
                found,
                "feature",
                kafka_bootstrap=found.kafka_mtls_bootstrap,
                kafka_security_protocol="SSL",
                kafka_sasl_username=None,
                kafka_sasl_password_file=None,
                kafka_ssl_cert_file=cert,
                kafka_ssl_key_file=key,
            ),
            "the broker refused the client certificate (mTLS)",
        ),
        "no client certificate on the mTLS port": (
            _settings(
                found,
                "feature",
                kafka_bootstrap=found.kafka_mtls_bootstrap,
                kafka_security_protocol="SSL",
                kafka_sasl_username=None,
                kafka_sasl_password_file=None,
            ),
            "the broker refused the client certificate (mTLS)",
        ),
    }
    secrets = _secrets(found)
    for name, (settings, expected) in cases.items():
        message, took = _exit_message(settings)
        assert expected in message, (name, message)
        assert "\n" not in message and not _leaks(message, secrets), name
        assert took < 5, (name, took)


def test_kafka_when_a_tls_client_meets_a_plaintext_listener_then_refused_in_one_line(
    pair: SecureEndpoints, kafka_bootstrap: str
) -> None:
    settings = PlatformSettings(
        kafka_bootstrap=kafka_bootstrap,  # the session's plaintext broker
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=pair.files.ca,
    )
    message, took = _exit_message(settings)
    assert "TLS failed" in message and "a plaintext listener?" in message, message
    assert "\n" not in message and took < 5


def _handshake(port: int, ca: Path, version: ssl.TLSVersion) -> str | None:
    """The TLS version a client offering only `version` gets, None if refused."""
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = context.maximum_version = version
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            return tls.version()
    except (ssl.SSLError, ConnectionError):
        return None


def test_tls_when_a_client_offers_only_tls_1_2_then_every_port_refuses_it(
    pair: SecureEndpoints,
) -> None:
    ports = [int(u.rsplit(":", 1)[1].split("/")[0]) for u in (
        pair.kafka_bootstrap, pair.kafka_mtls_bootstrap, pair.redis_url)]  # fmt: skip
    for port in ports:
        assert _handshake(port, pair.files.ca, ssl.TLSVersion.TLSv1_2) is None, port
    # Kafka's SASL_SSL port and Redis complete a TLS 1.3 handshake with no certificate.
    for port in (ports[0], ports[2]):
        assert _handshake(port, pair.files.ca, ssl.TLSVersion.TLSv1_3) == "TLSv1.3", port


def test_acls_when_feature_writes_orders_or_reads_executions_then_refused(
    pair: SecureEndpoints, caplog: pytest.LogCaptureFixture
) -> None:
    names = TopicNames(NS)
    over_mtls = _settings(
        pair,
        "feature",
        kafka_bootstrap=pair.kafka_mtls_bootstrap,
        kafka_security_protocol="SSL",
        kafka_sasl_username=None,
        kafka_sasl_password_file=None,
        kafka_ssl_cert_file=pair.files.cert("feature"),
        kafka_ssl_key_file=pair.files.key("feature"),
    )
    for settings in (_settings(pair, "feature"), over_mtls):  # SCRAM user, certificate CN
        producer = make_kafka_bus(settings).producer("feature-probe")
        producer.send(OutRecord(ORDERS, b"binance:BTC/USDT", b"{}"))
        with pytest.raises(BusError, match=rf"{names.physical(ORDERS)}: .*Topic authorization"):
            producer.flush(10)
        producer.close()

    bus = make_kafka_bus(_settings(pair, "feature"))
    link = bus.link(group=f"{NS}.feature", topics=[EXECUTIONS], client_id="feature-probe")
    got: list[object] = []

    def refused() -> bool:
        got.extend(link.poll(100, 0.2))
        errors = [str(getattr(r, "error", "")) for r in caplog.records]
        return any("Topic authorization failed" in e for e in errors)

    try:
        with caplog.at_level(logging.WARNING, logger="tickpipe.bus.kafka"):
            wait_until(refused, "no authorization error for executions.v1", timeout_s=15)
        assert got == []
        assert any(
            names.physical(EXECUTIONS) in str(getattr(r, "error", "")) for r in caplog.records
        )
    finally:
        link.close()

    # Its own output it may write (the certificate's principal is the same `feature`).
    producer = make_kafka_bus(over_mtls).producer("feature-probe")
    producer.send(OutRecord(FEATURES, b"probe", b"not a feature vector"))  # a dead letter
    producer.flush(10)
    producer.close()


def test_control_when_sent_by_a_principal_without_the_right_then_refused_in_one_line(
    pair: SecureEndpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in pair.env("feature").items():
        monkeypatch.setenv(key, value)
    from tickpipe.cli import main

    with pytest.raises(SystemExit) as err:
        main(["control", "kill-switch", "on"])
    message = str(err.value.code)
    assert message.startswith("tickpipe control: not sent:")
    assert "Topic authorization failed" in message and "\n" not in message


def _cache(pair: SecureEndpoints, principal: str, url: str | None = None) -> RedisCache:
    return RedisCache(
        url or pair.redis_user_url(principal),
        namespace=NS,
        security=RedisSecurity(
            password_file=pair.files.redis_password(principal), ca_file=pair.files.ca
        ),
    )


def test_redis_when_without_tls_or_outside_its_keys_then_refused(
    pair: SecureEndpoints, caplog: pytest.LogCaptureFixture
) -> None:
    port = int(pair.redis_url.rsplit(":", 1)[1].split("/")[0])
    plain = RedisCache(f"redis://127.0.0.1:{port}/0", namespace=NS)
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    with caplog.at_level(logging.ERROR, logger="tickpipe.cache.redis"):
        check_redis(plain)  # unreachable is not fatal (a cache), but said in one line
    errors = [str(getattr(r, "error", "")) for r in caplog.records]
    assert any("a TLS port? TICKPIPE_REDIS_URL should then be rediss://" in e for e in errors)
    plain.close()

    feature = _cache(pair, "feature")
    feature.set("features:binance:BTC/USDT", b"{}")  # its own
    for touch in (
        lambda: feature.set("pnl:paper", b"{}"),
        lambda: feature.get("risk:paper:kill_switch"),
        lambda: feature.delete("snapshot:sec.risk"),
        lambda: feature.keys("positions:"),  # SCAN would name every key
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            touch()
    feature.close()
    api = _cache(pair, "api")
    assert api.get("features:binance:BTC/USDT") == b"{}"  # reads all
    with pytest.raises(redis.exceptions.NoPermissionError):
        api.set("risk:paper:kill_switch", b"0")  # writes nothing
    api.close()
    anonymous = RedisCache(pair.redis_url, security=RedisSecurity(ca_file=pair.files.ca))
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()  # `default` is off
    anonymous.close()

    wrong = _settings(pair, "risk", redis_password_file=pair.files.redis_password("feature"))
    with pytest.raises(SystemExit) as err:
        make_cache(wrong, LiveClock())
    assert str(err.value.code).startswith("redis 127.0.0.1:")
    assert "refused" in str(err.value.code) and "\n" not in str(err.value.code)


def test_infra_cli_when_secure_then_status_answers_and_exports_hold_no_secret(
    pair: SecureEndpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from tickpipe.infra import cli

    def run(*argv: str) -> int:
        parser = argparse.ArgumentParser(prog="tickpipe")
        cli.add_parser(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["infra", *argv])
        code: int = args.func(args)
        return code

    root = str(pair.files.root)
    assert run("status", "--state-dir", root) == 0
    assert run("up", "--secure", "--state-dir", root, "--namespace", NS, "--as", "risk") == 0
    out = capsys.readouterr().out
    assert "export TICKPIPE_KAFKA_SASL_USERNAME=risk\n" in out
    assert f"export TICKPIPE_KAFKA_SASL_PASSWORD_FILE={pair.files.kafka_password('risk')}\n" in out
    assert f"export TICKPIPE_TOPIC_NAMESPACE={NS}\n" in out
    assert not _leaks(out, _secrets(pair))
    assert run("up", "--secure", "--state-dir", root, "--namespace", "other") == 1
    assert "serves namespace 'sec'" in capsys.readouterr().err
