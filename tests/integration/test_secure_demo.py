"""`tickpipe demo --kafka` over the secure local stack, as the README says to run it:
`eval "$(tickpipe infra up --secure | grep ^export)"`, then the demo. Its topic creation,
summary link and cache, and its five processes (which inherit its environment, so run as its
principal, `admin`) all go over SASL_SSL and TLS Redis; the summary shows fills, and no
password shows in its output or the services' logs."""

from __future__ import annotations

import gzip
import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.secure import NS, secure_pair
from tickpipe.infra.secure import SecureEndpoints

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "binance-spot-btcusdt-20240808.gz"
RECORDS = 16_000  # as test_secure_transport: enough for fills, a third of the sample
# The demo runs in a tmp dir (its logs go to ./.tickpipe/demo-logs): the services' files
# that default to paths under the repository are given absolute.
FILES = {
    "TICKPIPE_INFERENCE_MODEL_DIR": str(ROOT / "models" / "baseline" / "v1"),
    "TICKPIPE_INFERENCE_REGISTRY": str(ROOT / "models"),
    "TICKPIPE_RISK_EXCHANGE_INFO": str(SAMPLE.parent / "binance-exchange-info-btcusdt.json"),
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureEndpoints]:
    """A fresh secure Kafka broker and Redis for this module."""
    yield from secure_pair(tmp_path_factory)


def _cli(env: dict[str, str], cwd: Path, *argv: str, timeout_s: float) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "tickpipe.cli", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout, done.stderr


def _exports(out: str) -> dict[str, str]:
    """What `eval "$(... | grep ^export)"` sets (the values hold no spaces or quotes)."""
    pairs = (line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    return {k: v for k, v in (p for p in pairs if len(p) == 2) if k.startswith("TICKPIPE_")}


def _summary(out: str) -> dict[str, str]:
    """The summary table's rows: stage -> count / value."""
    rows = re.findall(r"^│ ([a-z_ ]+?)\s*│\s*(\S+) │$", out, re.MULTILINE)
    return dict(rows)


def test_demo_kafka_when_run_with_the_secure_exports_then_the_summary_shows_fills(
    pair: SecureEndpoints, tmp_path: Path
) -> None:
    data = tmp_path / "sample.gz"
    with gzip.open(SAMPLE, "rt") as src, gzip.open(data, "wt") as dst:
        dst.writelines(itertools.islice(src, RECORDS))
    base = {k: v for k, v in os.environ.items() if not k.startswith("TICKPIPE_")}
    up, _ = _cli(
        base,
        tmp_path,
        *("infra", "up", "--secure", "--state-dir", str(pair.files.root), "--namespace", NS),
        timeout_s=60,
    )  # the running pair: up is idempotent and prints the admin's settings
    exports = _exports(up)
    assert exports["TICKPIPE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert exports["TICKPIPE_KAFKA_SASL_USERNAME"] == "admin"
    assert exports["TICKPIPE_REDIS_URL"].startswith("rediss://admin@")

    env = {**base, **exports, **FILES}
    out, err = _cli(env, tmp_path, "demo", "--kafka", "--data", str(data), timeout_s=90)

    summary = _summary(out)
    assert int(summary.get("fills", "0").replace(",", "")) > 0, out + err[-2000:]
    assert int(summary["trades"].replace(",", "")) > 0
    assert summary["dead_letters"] == "0", out
    assert "SASL_SSL as admin" in " ".join(out.split()), out  # the title, however wrapped
    logs = sorted((tmp_path / ".tickpipe" / "demo-logs").glob("*.log"))
    assert [p.stem for p in logs] == ["execution", "feature", "inference", "ingest", "risk"]
    passwords = [p.read_text().strip() for p in (pair.files.root / "secrets").iterdir()]
    for text in [out, err, *(p.read_text() for p in logs)]:
        assert not [s for s in passwords if s in text], "a password in the demo's output"
        for refusal in ("NOPERM", "WRONGPASS", "uthorization failed", "authentication error"):
            assert refusal not in text, refusal
