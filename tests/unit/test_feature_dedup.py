"""Feature drops a trade it has counted already (same trade id and exchange time), whatever
event id or arrival number the repeat carries; the window is bounded and kept in the
snapshot, whose version 1 (without it) is migrated."""

from __future__ import annotations

import math

import orjson
import pytest
from prometheus_client import REGISTRY

from tests.unit import factories as f
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import FeatureVector, TradeTick
from tickpipe.service import Rejected, SnapshotVersionError
from tickpipe.topics import QUOTES, TRADES
from tickpipe_feature import snapshot
from tickpipe_feature.app import SERVICE
from tickpipe_feature.dedup import RecentTrades
from tickpipe_feature.handlers import DEDUP_BARS, FeatureHandler

S = f.SECOND
MS = 1_000_000
T = 1_723_161_255 * S
WARMUP_BARS = 26 + 9 - 1


def _handler(lateness_ns: int = 0, **kw: int) -> FeatureHandler:
    clock = SimClock(T)
    return FeatureHandler(EventIds(clock, seed=1), MemoryCache(clock), S, 300.0, lateness_ns, **kw)


def _trades(n_bars: int, first: int = 0) -> list[TradeTick]:
    """Three trades per second, numbered like ingest does (trades only: no quotes between)."""
    out: list[TradeTick] = []
    for i in range(first, first + n_bars):
        for k in range(3):
            price = 60_000.0 + 20 * math.sin(i / 4) + k
            out.append(
                f.trade(
                    event_id=f"01T{i:05d}{k}",
                    trade_id=str(1_000 + 3 * i + k),
                    ts_event=T + i * S + k * 300 * MS,
                    price=price,
                    size=0.1 + k / 10,
                    side="buy" if (i + k) % 2 else "sell",
                )
            )
    return out


def _run(handler: FeatureHandler, trades: list[TradeTick]) -> list[tuple[int, dict[str, float]]]:
    out: list[tuple[int, dict[str, float]]] = []
    for t in trades:
        for emit in handler.handle(t, TRADES, t.ts_event):
            assert isinstance(emit.event, FeatureVector)
            out.append((emit.event.bar_start, dict(emit.event.values)))
    return out


def _warm(handler: FeatureHandler) -> None:
    handler.handle(f.quote(), QUOTES, T)


def _duplicates() -> float:
    labels = {"service": "feature", "topic": TRADES}
    return REGISTRY.get_sample_value("tickpipe_duplicates_total", labels) or 0.0


def _repeat(t: TradeTick, tag: str = "R", seq: int | None = None) -> TradeTick:
    """The same trade as a repeating upstream sends it: a new event id (and number)."""
    return t.model_copy(update={"event_id": f"{tag}{t.event_id}", "ingest_seq": seq})


def test_feature_when_a_trade_repeats_in_the_open_bar_drops_it_and_counts_it() -> None:
    clean, repeated = _handler(), _handler()
    for h in (clean, repeated):
        _warm(h)
    trades = _trades(WARMUP_BARS + 6)
    before = _duplicates()
    with_repeats: list[TradeTick] = []
    for i, t in enumerate(trades):
        with_repeats.append(t)
        if i % 3 == 1:  # the bar is still open: its third trade has not come
            with_repeats.append(_repeat(t))

    expected = _run(clean, trades)
    got = _run(repeated, with_repeats)

    assert len(expected) > 3
    assert got == expected
    repeats = len(with_repeats) - len(trades)
    assert repeated.duplicate_trades(f.KEY) == repeats
    assert _duplicates() - before == repeats


def test_feature_when_restarted_ingest_resends_trades_numbered_from_zero_drops_them() -> None:
    clean, repeated = _handler(), _handler()
    trades = [t.model_copy(update={"ingest_seq": n}) for n, t in enumerate(_trades(60))]
    # An ingest restarted without resuming: the last 20 trades again, numbered from 0, then on.
    cut = 40
    resent = [_repeat(t, "X", seq=n) for n, t in enumerate(trades[cut - 20 : cut])]
    rest = [
        t.model_copy(update={"ingest_seq": len(resent) + n}) for n, t in enumerate(trades[cut:])
    ]
    for h in (clean, repeated):
        _warm(h)

    expected = _run(clean, trades)
    got = _run(repeated, trades[:cut] + resent + rest)

    assert got == expected
    assert repeated.duplicate_trades(f.KEY) == 20
    assert repeated.late_trades(f.KEY) == 0  # repeats of emitted bars: dropped, not "late"


def test_feature_when_a_repeat_is_older_than_the_window_refuses_it_as_late() -> None:
    handler = _handler()
    _warm(handler)
    trades = _trades(DEDUP_BARS + 10)
    _run(handler, trades)

    with pytest.raises(Rejected, match="late_trade"):
        handler.handle(_repeat(trades[0]), TRADES, T)

    assert handler.duplicate_trades(f.KEY) == 0
    assert handler.late_trades(f.KEY) == 1  # dead-lettered: still not counted twice


def test_feature_when_same_id_at_another_time_counts_it() -> None:
    """A trade id alone does not make a repeat: files without ids number their rows, and two
    merged files may share row numbers."""
    clean = _handler()
    trades = _trades(3)
    twin = trades[1].model_copy(update={"event_id": "other", "ts_event": trades[1].ts_event + 1})

    _run(clean, [*trades[:2], twin, *trades[2:]])

    assert clean.duplicate_trades(f.KEY) == 0


def test_feature_when_a_late_trade_is_refused_it_is_not_remembered() -> None:
    handler = _handler()
    _run(handler, _trades(5))
    late = f.trade(trade_id="late", ts_event=T + S)

    for _ in range(2):
        with pytest.raises(Rejected, match="late_trade"):
            handler.handle(late, TRADES, T)

    assert (handler.late_trades(f.KEY), handler.duplicate_trades(f.KEY)) == (2, 0)


def test_recent_trades_when_many_trades_pass_keeps_the_window_only() -> None:
    by_time = RecentTrades(horizon_ns=10 * S, max_ids=1_000)
    by_size = RecentTrades(horizon_ns=3_600 * S, max_ids=50)
    for n in range(2_000):
        for window in (by_time, by_size):
            window.counted(str(n), T + n * 100 * MS)  # 10 a second

    assert 100 <= len(by_time) <= 101  # the last 10 s
    assert len(by_size) == 50
    assert by_time.repeated("1999", T + 1_999 * 100 * MS)
    assert not by_time.repeated("1", T + 100 * MS)  # forgotten: the bar builder refuses it


def test_feature_when_lateness_allowed_keeps_the_open_bars_in_the_window() -> None:
    handler = _handler(lateness_ns=30 * S, dedup_bars=0)
    trades = _trades(40)
    _run(handler, trades)

    # 30 s behind the newest trade its bar is still open: a repeat there must be caught.
    old = next(t for t in trades if t.ts_event >= trades[-1].ts_event - 29 * S)
    assert handler.handle(_repeat(old), TRADES, T) == []
    assert handler.duplicate_trades(f.KEY) == 1


# -- snapshots -------------------------------------------------------------------------------


def test_feature_when_restored_remembers_the_trades_it_counted() -> None:
    handler = _handler()
    _warm(handler)
    trades = _trades(WARMUP_BARS + 4)
    _run(handler, trades)
    saved = handler.snapshot()

    restored = _handler()
    restored.restore(saved)

    assert restored.snapshot() == saved
    assert restored.handle(_repeat(trades[-1]), TRADES, T) == []
    assert restored.duplicate_trades(f.KEY) == 1
    assert snapshot.loads(saved)["format"] == 3


def _version_1(data: bytes) -> bytes:
    """What the previous build wrote: handler format 2, no dedup window."""
    state = snapshot.loads(data)
    state["format"] = 2
    for saved in state["instruments"].values():
        del saved["dedup"]
    return snapshot.dumps(state)


def test_feature_spec_when_snapshot_is_version_1_migrates_it_and_carries_on() -> None:
    assert SERVICE.snapshots.version == 2
    trades = _trades(WARMUP_BARS + 12)
    cut = len(trades) // 2
    uninterrupted = _handler()
    _warm(uninterrupted)
    _run(uninterrupted, trades[:cut])
    old = _version_1(uninterrupted.snapshot())
    with pytest.raises(ValueError, match="format"):  # the migration makes it readable
        _handler().restore(old)

    restored = _handler()
    restored.restore(SERVICE.snapshots.upgrade("feature", 1, old))

    rest = trades[cut:]
    assert _run(restored, rest) == _run(uninterrupted, rest)
    # The window starts empty after the upgrade, then fills as before.
    assert restored.handle(_repeat(rest[-1]), TRADES, T) == []


def test_feature_spec_when_snapshot_is_version_2_reads_it_as_it_is() -> None:
    handler = _handler()
    _run(handler, _trades(5))
    saved = handler.snapshot()

    assert SERVICE.snapshots.upgrade("feature", 2, saved) == saved
    with pytest.raises(SnapshotVersionError, match="newer"):
        SERVICE.snapshots.upgrade("feature", 3, saved)


def test_feature_migration_when_not_a_version_1_snapshot_refuses_it() -> None:
    saved = _handler().snapshot()  # format 3 already

    with pytest.raises(ValueError, match="not a version 1"):
        SERVICE.snapshots.upgrade("feature", 1, saved)


def test_feature_snapshot_when_window_saved_lists_ids_and_times() -> None:
    handler = _handler()
    trades = _trades(2)
    _run(handler, trades)

    window = orjson.loads(handler.snapshot())["instruments"][f.KEY]["dedup"]

    assert window["ids"] == [t.trade_id for t in trades]
    assert window["ts"] == [t.ts_event for t in trades]
