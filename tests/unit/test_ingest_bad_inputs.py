"""The bad-input corpus: real records with one field broken, in every format, 100% quarantined.

`tests/fixtures/bad_inputs/cases.json` gives each record's expected outcome ("ok" for the
intact records that give later ones something to contradict). Every bad record must end on
dlq.v1 with its reason and its original bytes, be counted by reason, and nothing bad may
reach md.trades.v1 or md.quotes.v1.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import orjson
import polars as pl
import pytest
from prometheus_client import REGISTRY

from tests.fixtures.paths import BAD_INPUTS
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.marketdata import ParseError, trade_from_ccxt
from tickpipe.messages import DeadLetter
from tickpipe.service import Emit
from tickpipe.topics import DLQ
from tickpipe_ingest.domain.validation import REASONS, Validator
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.replay import FileReplaySource

CASES: dict[str, list[str]] = json.loads((BAD_INPUTS / "cases.json").read_text())
NOW = 1_795_000_000 * 1_000_000_000
PARSE_REASONS = {
    "malformed_line",
    "malformed_json",
    "missing_field",
    "invalid_number",
    "invalid_timestamp",
    "invalid_side",
}
FILES = [name for name in CASES if name != "ccxt_trades.json"]


def _normalizer(source: str) -> Normalizer:
    clock = SimClock(NOW)
    return Normalizer(clock, EventIds(clock, seed=3), source, Validator())


def _replay(path: Path) -> tuple[list[Emit], Normalizer]:
    normalize = _normalizer(f"file:{path.name}")
    source = FileReplaySource(path, normalize, SimClock(NOW), exchange="binance")
    return list(source), normalize


def _outcomes(emits: list[Emit]) -> list[str]:
    return [e.event.reason if isinstance(e.event, DeadLetter) else "ok" for e in emits]


def _rejects(source: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "tickpipe_ingest_rejects_total", {"source": source, "reason": reason}
    )
    return value or 0.0


def test_bad_input_corpus_when_listed_covers_every_reason() -> None:
    seen = {o for outcomes in CASES.values() for o in outcomes} - {"ok"}

    assert seen >= PARSE_REASONS
    assert seen >= set(REASONS) - {
        "duplicate_quote",
        "sequence_backwards",
    }  # quotes with sequences: test_ingest_gaps


@pytest.mark.parametrize("name", FILES)
def test_replay_when_corpus_file_read_quarantines_every_bad_record(name: str) -> None:
    emits, normalize = _replay(BAD_INPUTS / name)

    assert _outcomes(emits) == CASES[name]
    bad = [o for o in CASES[name] if o != "ok"]
    assert sum(e.topic == DLQ for e in emits) == len(bad)  # 100% quarantined
    assert normalize.counts["dead_letters"] == len(bad)
    assert normalize.rejects == Counter(bad)


@pytest.mark.parametrize("name", [n for n in FILES if not n.endswith(".jsonl")])
def test_replay_when_text_record_dead_lettered_keeps_its_original_line(name: str) -> None:
    path = BAD_INPUTS / name
    lines = path.read_bytes().splitlines()
    records = lines[1:] if name.endswith(".csv") else lines  # the CSV header is no record
    emits, _ = _replay(path)

    for emit, line in zip(emits, records, strict=True):
        if isinstance(emit.event, DeadLetter):
            payload = base64.b64decode(emit.event.payload_b64)
            # Capture lines are kept without the receive-time prefix once parsed.
            assert payload in (line, line.partition(b" ")[2]), emit.event.reason
            assert emit.event.service == "ingest"
            assert emit.event.source == f"file:{name}"
            assert emit.key == f"file:{name}"


def test_replay_when_records_dead_lettered_counts_them_by_reason_in_metrics() -> None:
    name = "BTCUSDT-trades.csv"
    source = f"file:{name}"
    before = {r: _rejects(source, r) for r in set(CASES[name])}

    _replay(BAD_INPUTS / name)

    counted = {r: _rejects(source, r) - before[r] for r in before if r != "ok"}
    assert counted == {r: float(n) for r, n in Counter(CASES[name]).items() if r != "ok"}


def test_normalizer_when_ccxt_payloads_broken_quarantines_each_with_exchange_payload() -> None:
    records = json.loads((BAD_INPUTS / "ccxt_trades.json").read_text())
    normalize = _normalizer("exchange:binance")
    emits = []
    for record in records:
        try:
            item = trade_from_ccxt("binance", record)
        except ParseError as err:
            emits.append(normalize(err))
        else:
            emits.append(normalize(item))

    assert _outcomes(emits) == CASES["ccxt_trades.json"]
    for emit, record in zip(emits, records, strict=True):
        if isinstance(emit.event, DeadLetter):
            assert orjson.loads(base64.b64decode(emit.event.payload_b64)) == record["info"]


def test_replay_when_parquet_rows_broken_quarantines_them(tmp_path: Path) -> None:
    # The corpus' CSV trades, typed: a Parquet column cannot hold "abc", but it can hold these.
    good = {"ts": 1_723_161_255_342, "id": 3_735_683_259, "price": 61837.63, "qty": 0.02, "m": True}
    rows = [
        (good, "ok"),
        ({**good, "id": 3_735_683_260, "price": float("nan")}, "non_finite"),
        ({**good, "id": 3_735_683_261, "price": 0.0}, "invalid_price"),
        ({**good, "id": 3_735_683_262, "qty": -0.5}, "invalid_size"),
        ({**good, "id": None}, "missing_field"),
        ({**good, "id": 3_735_683_263, "ts": None}, "missing_field"),
        ({**good, "id": 3_735_683_264, "ts": 4_102_444_800_000}, "timestamp_in_future"),
        ({**good, "id": 3_735_683_259, "ts": good["ts"] + 1}, "duplicate_trade"),
        ({**good, "id": 3_735_683_265, "qty": None}, "missing_field"),
    ]
    path = tmp_path / "BTCUSDT-trades.parquet"
    frame = pl.DataFrame(
        [r for r, _ in rows],
        schema={
            "ts": pl.Int64,
            "id": pl.Int64,
            "price": pl.Float64,
            "qty": pl.Float64,
            "m": pl.Boolean,
        },
    )
    frame.write_parquet(path)

    emits, _ = _replay(path)

    assert _outcomes(emits) == [o for _, o in rows]
