"""What a backtest engine returns, and the fills and marks read from its topics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from pydantic_settings import BaseSettings

from tickpipe.backtest.report import Fill, Mark
from tickpipe.bus.base import Record
from tickpipe.runner import EVENT_TYPE
from tickpipe.summary import Summary

DEFAULT_CAPITAL = 100_000.0


@dataclass
class BacktestResult:
    orders: list[Record]
    executions: list[Record]
    fills: list[Fill]
    marks: list[Mark]
    summary: Summary
    capital: float
    events: int  # market data records the source published
    trades: int
    elapsed_s: float
    # The settings each service ran with (JSON values), e.g. for a report.
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def output_bytes(self) -> bytes:
        """Orders then executions as published (key and payload): what determinism compares."""
        out = bytearray()
        for r in (*self.orders, *self.executions):
            out += (r.key or b"") + b"\t" + r.value + b"\n"
        return bytes(out)


def fills_of(executions: list[Record]) -> list[Fill]:
    fills = []
    for r in executions:
        if r.header(EVENT_TYPE) != b"execution":
            continue
        e = orjson.loads(r.value)
        qty = Decimal(str(e.get("last_qty", "0")))
        if qty == 0 or e.get("last_price") is None:
            continue
        fills.append(
            Fill(
                ts_ns=int(e["ts_event"]),
                instrument=f"{e['exchange']}:{e['symbol']}",
                side=str(e["side"]),
                qty=float(qty),
                price=float(Decimal(str(e["last_price"]))),
                fee=float(Decimal(str(e.get("fee", "0")))),
            )
        )
    return fills


def marks_of(features: list[Record]) -> list[Mark]:
    """Each bar's close (from the feature vectors) marks the book."""
    marks = []
    for r in features:
        f = orjson.loads(r.value)
        marks.append(Mark(int(f["ts_event"]), f"{f['exchange']}:{f['symbol']}", float(f["close"])))
    return marks


def dumped(settings: Mapping[str, BaseSettings]) -> dict[str, dict[str, Any]]:
    """Settings as JSON values, per service."""
    return {name: s.model_dump(mode="json") for name, s in settings.items()}
