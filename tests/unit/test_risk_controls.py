"""Pre-trade controls, each on its own, then composed by the engine (all reasons at once)."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

import pytest

from tickpipe_risk.domain.books import Fill
from tickpipe_risk.domain.checks import Intent
from tickpipe_risk.domain.controls.allowlist import check_allowlist
from tickpipe_risk.domain.controls.collar import check_collar
from tickpipe_risk.domain.controls.correlation import (
    CorrelationModel,
    check_correlated_risk,
    pair,
)
from tickpipe_risk.domain.controls.duplicates import DuplicateGuard
from tickpipe_risk.domain.controls.exposure import check_exposure, reduces
from tickpipe_risk.domain.controls.fill_throttle import FillThrottle
from tickpipe_risk.domain.controls.freshness import check_reference, check_signal_age
from tickpipe_risk.domain.controls.halts import Halts
from tickpipe_risk.domain.controls.loss import DAY_NS, LossGuard
from tickpipe_risk.domain.controls.open_orders import check_open_notional
from tickpipe_risk.domain.controls.order_size import check_order_size
from tickpipe_risk.domain.controls.throttle import OrderThrottle
from tickpipe_risk.domain.engine import RiskEngine
from tickpipe_risk.domain.limits import (
    AccountLimits,
    Guards,
    Limits,
    StrategyLimits,
    UnknownLimit,
)

D = Decimal
S = 1_000_000_000
T0 = 1_723_161_254 * S
BTC, ETH, SOL = "binance:BTC/USDT", "binance:ETH/USDT", "binance:SOL/USDT"

# -- allowlist ------------------------------------------------------------------------------


def test_allowlist_when_symbol_listed_or_list_empty_passes() -> None:
    assert check_allowlist(BTC, frozenset({BTC})) == []
    assert check_allowlist(BTC, frozenset()) == []


def test_allowlist_when_symbol_not_listed_returns_symbol_not_allowed() -> None:
    assert check_allowlist(BTC, frozenset({ETH})) == ["symbol_not_allowed"]


# -- order size -----------------------------------------------------------------------------


def test_order_size_when_at_limits_passes_and_above_fails() -> None:
    assert check_order_size(D(5), D(5_000), D(5), D(25_000)) == []
    assert check_order_size(D("5.00001"), D(1), D(5), D(25_000)) == ["max_order_qty"]
    assert check_order_size(D(1), D("25000.01"), D(5), D(25_000)) == ["max_order_notional"]
    assert check_order_size(D(6), D(5_000), D(5), D(25_000)) == [
        "max_order_qty",
        "max_order_notional",
    ]


def test_order_size_when_limits_off_or_price_unknown_skips_them() -> None:
    assert check_order_size(D(10**6), D(10**6), None, None) == []
    assert check_order_size(D(1), None, D(5), D(1)) == []


# -- position and gross exposure ------------------------------------------------------------


def _position(held: Decimal, qty: Decimal, price: Decimal, cap: Decimal | None) -> list[str]:
    return check_exposure({BTC: held}, {BTC: price}, BTC, qty, cap, None)


def test_position_when_order_grows_past_cap_returns_reason() -> None:
    assert _position(D("0.8"), D("0.03"), D(60_000), D(50_000)) == []
    assert _position(D("0.8"), D("0.04"), D(60_000), D(50_000)) == ["max_position"]


def test_position_when_order_shrinks_oversized_exposure_passes() -> None:
    assert _position(D(1), D("-0.1"), D(60_000), D(50_000)) == []
    assert _position(D(1), D("0.01"), D(60_000), D(50_000)) == ["max_position"]


def test_position_when_order_flips_past_cap_returns_reason() -> None:
    assert _position(D("0.5"), D("-1.5"), D(60_000), D(50_000)) == ["max_position"]


def test_position_when_nothing_held_counts_the_order_alone() -> None:
    assert check_exposure({}, {BTC: D(60_000)}, BTC, D(1), D(50_000), None) == ["max_position"]
    assert check_exposure({}, {BTC: D(60_000)}, BTC, D("0.5"), D(50_000), None) == []


def test_gross_when_other_symbols_fill_the_cap_returns_reason() -> None:
    held = {BTC: D("0.5"), ETH: D(-5)}  # 30,000 + 15,000
    prices = {BTC: D(60_000), ETH: D(3_000)}

    assert check_exposure(held, prices, BTC, D("0.08"), None, D(50_000)) == []  # 49,800
    assert check_exposure(held, prices, BTC, D("0.09"), None, D(50_000)) == [
        "max_gross_exposure"
    ]  # 50,400
    assert check_exposure(held, prices, ETH, D(5), None, D(35_000)) == []  # shrinks to 30,000
    assert check_exposure(held, prices, BTC, D(1), None, None) == []


def test_exposure_when_both_caps_break_returns_both_with_prefix() -> None:
    held = {BTC: D("0.5"), ETH: D(-5)}
    prices = {BTC: D(60_000), ETH: D(3_000)}

    assert check_exposure(held, prices, BTC, D(1), D(50_000), D(50_000), "account_") == [
        "account_max_position",
        "account_max_gross_exposure",
    ]


def test_reduces_when_order_moves_toward_zero_without_crossing_is_true() -> None:
    assert reduces(D(1), D("-0.4"))
    assert reduces(D(-1), D(1))  # to flat
    assert not reduces(D(1), D("-1.5"))  # through zero
    assert not reduces(D(1), D("0.1"))
    assert not reduces(D(0), D("-0.1"))


# -- open orders ----------------------------------------------------------------------------


def test_open_notional_when_order_would_pass_cap_returns_reason() -> None:
    assert check_open_notional(D(90_000), D(10_000), D(100_000)) == []
    assert check_open_notional(D(90_000), D("10000.01"), D(100_000)) == ["max_open_notional"]
    assert check_open_notional(D(10**9), D(1), None) == []


# -- freshness and collar -------------------------------------------------------------------


def test_reference_when_missing_or_older_than_limit_fails_closed() -> None:
    assert check_reference(None, T0, 5 * S) == ["no_reference_price"]
    assert check_reference(T0, T0 + 5 * S, 5 * S) == []
    assert check_reference(T0, T0 + 5 * S + 1, 5 * S) == ["stale_reference_price"]
    assert check_reference(T0, T0 + 10**6 * S, 0) == []  # age check off; existence still not
    assert check_reference(None, T0, 0) == ["no_reference_price"]


def test_signal_age_when_older_than_limit_returns_stale_signal() -> None:
    assert check_signal_age(T0, T0 + 5 * S, 5 * S) == []
    assert check_signal_age(T0, T0 + 5 * S + 1, 5 * S) == ["stale_signal"]
    assert check_signal_age(T0, T0 + 10**6 * S, 0) == []


def test_collar_when_limit_price_outside_band_returns_price_collar() -> None:
    ref = D(60_000)

    assert check_collar(D(60_600), ref, D(100)) == []  # exactly 100 bps
    assert check_collar(D("60600.01"), ref, D(100)) == ["price_collar"]
    assert check_collar(D("59399.99"), ref, D(100)) == ["price_collar"]
    assert check_collar(None, ref, D(100)) == []  # a market order is priced at the reference
    assert check_collar(D(1), ref, D(0)) == []  # collar off


# -- message throttle -----------------------------------------------------------------------


def test_order_throttle_when_symbol_window_full_rejects_until_it_slides() -> None:
    throttle = OrderThrottle()
    for i in range(3):
        throttle.record(BTC, T0 + i)

    assert throttle.check(BTC, T0 + 10, S, 3, 100) == ["throttle_symbol"]
    assert throttle.check(ETH, T0 + 10, S, 3, 100) == []
    assert throttle.check(BTC, T0 + S - 1, S, 3, 100) == ["throttle_symbol"]
    assert throttle.check(BTC, T0 + S, S, 3, 100) == []  # the first slid out: (t-1s, t]


def test_order_throttle_when_account_window_full_rejects_every_symbol() -> None:
    throttle = OrderThrottle()
    throttle.record(BTC, T0)
    throttle.record(ETH, T0)

    assert throttle.check(SOL, T0, S, 10, 2) == ["throttle_global"]
    assert throttle.check(SOL, T0, S, 10, 0) == []  # off


# -- repeated-execution throttle ------------------------------------------------------------


def test_fill_throttle_when_n_fills_within_window_disables_strategy_in_symbol() -> None:
    throttle = FillThrottle()

    tripped = [throttle.record("a", BTC, T0 + i * S, 3, 10 * S) for i in range(3)]

    assert tripped == [False, False, True]
    assert throttle.check("a", BTC) == ["fill_throttle"]
    assert throttle.check("b", BTC) == []
    assert throttle.check("a", ETH) == []


def test_fill_throttle_when_fills_spread_wider_than_window_stays_enabled() -> None:
    throttle = FillThrottle()

    tripped = [throttle.record("a", BTC, T0 + i * 5 * S, 3, 10 * S) for i in range(6)]

    assert not any(tripped)


def test_fill_throttle_when_re_enabled_passes_and_counts_afresh() -> None:
    throttle = FillThrottle()
    for i in range(3):
        throttle.record("a", BTC, T0 + i, 3, 10 * S)
        throttle.record("b", BTC, T0 + i, 3, 10 * S)

    throttle.enable(BTC, "a")

    assert throttle.check("a", BTC) == []
    assert throttle.check("b", BTC) == ["fill_throttle"]
    assert not throttle.record("a", BTC, T0 + 3, 3, 10 * S)
    throttle.enable(BTC)
    assert throttle.check("b", BTC) == []


# -- loss limits ----------------------------------------------------------------------------


def test_loss_guard_when_daily_loss_passes_limit_allows_only_reducing_orders() -> None:
    guard = LossGuard()
    guard.observe(D(100), T0, D(500), None)  # the day starts from 0: nothing traded before
    guard.observe(D(-500), T0 + S, D(500), None)
    assert guard.check(reducing=False) == []

    guard.observe(D("-500.01"), T0 + 2 * S, D(500), None)

    assert guard.check(reducing=False) == ["daily_loss_limit"]
    assert guard.check(reducing=True) == []


def test_loss_guard_when_breached_stays_latched_until_the_next_utc_day() -> None:
    guard = LossGuard()
    day_start = (T0 // DAY_NS) * DAY_NS
    guard.observe(D(0), day_start, D(100), None)
    guard.observe(D(-200), day_start + S, D(100), None)
    guard.observe(D(0), day_start + 2 * S, D(100), None)  # recovered: still latched

    assert guard.check(reducing=False) == ["daily_loss_limit"]
    guard.observe(D(-50), day_start + 3 * S, D(100), None)
    guard.observe(D(-150), day_start + DAY_NS, D(100), None)  # the new day starts at -50
    assert guard.check(reducing=False) == []
    guard.observe(D("-150.01"), day_start + DAY_NS + S, D(100), None)
    assert guard.check(reducing=False) == ["daily_loss_limit"]


def test_loss_guard_when_drawdown_from_peak_passes_limit_returns_max_drawdown() -> None:
    guard = LossGuard()
    for equity in (D(1_000), D(500)):
        guard.observe(equity, T0, None, D(500))
    assert guard.check(reducing=False) == []

    guard.observe(D("499.99"), T0, None, D(500))

    assert guard.check(reducing=False, prefix="account_") == ["account_max_drawdown"]


def test_loss_guard_when_re_armed_clears_latch_and_restarts_peak() -> None:
    guard = LossGuard()
    guard.observe(D(1_000), T0, D(100), D(500))
    guard.observe(D(-200), T0, D(100), D(500))
    assert guard.check(reducing=False) == ["daily_loss_limit", "max_drawdown"]

    guard.rearm_drawdown()
    guard.rearm_daily()
    guard.observe(D(-300), T0, D(2_000), D(500))  # 100 below the new peak (-200)

    assert guard.check(reducing=False) == []
    assert guard.peak == D(-200)


# -- correlation-aware exposure -------------------------------------------------------------


def test_correlation_risk_when_one_symbol_is_vol_times_notional() -> None:
    model = CorrelationModel(vols={BTC: 0.05})

    assert model.risk({BTC: D(-10_000)}) == pytest.approx(500.0)


def test_correlation_risk_when_two_symbols_matches_closed_form() -> None:
    model = CorrelationModel({BTC: 0.04, ETH: 0.05}, {pair(BTC, ETH): 0.6})
    a, b = 10_000 * 0.04, -20_000 * 0.05

    risk = model.risk({BTC: D(10_000), ETH: D(-20_000)})

    assert risk == pytest.approx(math.sqrt(a * a + b * b + 2 * 0.6 * a * b))


def test_correlation_risk_when_hedged_with_perfect_correlation_is_zero() -> None:
    model = CorrelationModel({BTC: 0.04, ETH: 0.04}, {pair(BTC, ETH): 1.0})

    assert model.risk({BTC: D(10_000), ETH: D(-10_000)}) == pytest.approx(0.0, abs=1e-9)


def test_correlated_risk_when_growing_past_cap_returns_reason() -> None:
    assert check_correlated_risk(900.0, 1_000.0, D(1_000)) == []
    assert check_correlated_risk(900.0, 1_000.5, D(1_000)) == ["correlated_risk"]
    assert check_correlated_risk(2_000.0, 1_500.0, D(1_000)) == []  # shrinking
    assert check_correlated_risk(0.0, 10**9, None) == []


def test_correlation_model_when_matrix_not_positive_semidefinite_raises() -> None:
    bad = CorrelationModel(
        correlations={pair(BTC, ETH): 0.9, pair(BTC, SOL): 0.9, pair(ETH, SOL): -0.9}
    )
    CorrelationModel(correlations={pair(BTC, ETH): 0.9}).validate([BTC, ETH, SOL])

    with pytest.raises(ValueError, match="positive semi-definite"):
        bad.validate([BTC, ETH, SOL])
    with pytest.raises(ValueError, match="outside"):
        CorrelationModel(correlations={pair(BTC, ETH): 1.5}).validate([BTC, ETH])


# -- duplicates -----------------------------------------------------------------------------


def test_duplicates_when_client_order_id_seen_returns_duplicate_order_forever() -> None:
    guard = DuplicateGuard()
    guard.record("tp1", ("a", BTC, "1", ""), T0)

    assert guard.check("tp1", ("a", BTC, "2", ""), T0 + 10**6 * S, S) == ["duplicate_order"]
    assert guard.check("tp2", ("a", BTC, "2", ""), T0, S) == []


def test_duplicates_when_identical_order_within_window_returns_duplicate_order() -> None:
    guard = DuplicateGuard()
    guard.record("tp1", ("a", BTC, "1", ""), T0)

    assert guard.check("tp2", ("a", BTC, "1", ""), T0 + S - 1, S) == ["duplicate_order"]
    assert guard.check("tp2", ("b", BTC, "1", ""), T0, S) == []  # another strategy
    assert guard.check("tp2", ("a", BTC, "-1", ""), T0, S) == []
    assert guard.check("tp2", ("a", BTC, "1", ""), T0 + S, S) == []  # window passed
    assert guard.check("tp3", ("a", BTC, "1", ""), T0, 0) == []  # window off


def test_duplicates_when_over_capacity_forgets_oldest_ids() -> None:
    guard = DuplicateGuard(capacity=2)
    for i in range(3):
        guard.record(f"tp{i}", ("a", BTC, str(i), ""), T0)

    assert guard.check("tp0", ("a", BTC, "9", ""), T0, 0) == []
    assert guard.check("tp2", ("a", BTC, "9", ""), T0, 0) == ["duplicate_order"]


# -- halts ----------------------------------------------------------------------------------


def test_halts_when_feed_degraded_halts_symbol_until_every_stream_healthy() -> None:
    halts = Halts()
    halts.feed(BTC, "trades", "gap")
    halts.feed(BTC, "quotes", "stale")

    halts.feed(BTC, "trades", None)
    assert halts.check(BTC) == ["data_quality_halt"]
    halts.feed(BTC, "quotes", None)
    assert halts.check(BTC) == []
    assert halts.check(ETH) == []


def test_halts_when_kill_switch_and_pause_report_both() -> None:
    halts = Halts(kill_switch=True, paused={BTC})

    assert halts.check(BTC) == ["kill_switch", "symbol_paused"]
    assert halts.check(ETH) == ["kill_switch"]


# -- limits ---------------------------------------------------------------------------------


def test_limits_when_strategy_overridden_only_that_strategy_changes() -> None:
    limits = Limits(overrides={"momo": {"max_order_qty": D(1)}})

    assert limits.for_strategy("momo").max_order_qty == D(1)
    assert limits.for_strategy("other").max_order_qty == D(5)


@pytest.mark.parametrize(
    ("name", "value", "strategy", "read"),
    [
        ("max_order_qty", "2", None, lambda lim: lim.for_strategy("x").max_order_qty),
        ("max_order_qty", "2", "x", lambda lim: lim.for_strategy("x").max_order_qty),
        ("account_max_drawdown", "2", None, lambda lim: lim.account.max_drawdown),
        ("max_correlated_risk", "2", None, lambda lim: lim.account.max_correlated_risk),
        ("collar_bps", "2", None, lambda lim: lim.guards.collar_bps),
        ("order_window_s", "0.000000002", None, lambda lim: lim.guards.order_window_ns),
        ("max_orders_global", "2", None, lambda lim: lim.guards.max_orders_global),
    ],
)
def test_limits_when_set_by_name_changes_that_limit(
    name: str, value: str, strategy: str | None, read: object
) -> None:
    changed = Limits().with_limit(name, value, strategy)

    assert callable(read)
    assert read(changed) == 2
    assert read(Limits()) != 2


@pytest.mark.parametrize(
    ("name", "value", "strategy", "reason"),
    [
        ("max_leverage", "2", None, "unknown_limit"),
        ("account_max_drawdown", "2", "momo", "unknown_limit"),  # not per strategy
        ("max_order_qty", "two", None, "invalid_limit_value"),
        ("max_order_qty", "-1", None, "invalid_limit_value"),
        ("max_order_qty", "NaN", None, "invalid_limit_value"),
        ("max_orders_global", "2.5", None, "invalid_limit_value"),
    ],
)
def test_limits_when_name_unknown_or_value_bad_raises_with_reason(
    name: str, value: str, strategy: str | None, reason: str
) -> None:
    with pytest.raises(UnknownLimit) as err:
        Limits().with_limit(name, value, strategy)

    assert err.value.reason == reason


# -- the engine: every reason at once -------------------------------------------------------

OPEN = Limits(
    strategy=StrategyLimits(*([None] * 7)),
    account=AccountLimits(*([None] * 6)),
    guards=Guards(0, 0, D(0), 0, 0, S, 0, S, 0),
)


def _intent(qty: str = "0.1", key: str = BTC, strategy: str = "a", coid: str = "tp1") -> Intent:
    return Intent(strategy, key, D(qty), None, T0, coid)


def _engine(limits: Limits = OPEN) -> RiskEngine:
    engine = RiskEngine(limits)
    engine.quote(BTC, D(60_000), T0)
    engine.quote(ETH, D(3_000), T0)
    return engine


def _fill(engine: RiskEngine, qty: str, price: str, strategy: str = "a", key: str = BTC,
          n: int = 0, fee: str = "0") -> None:  # fmt: skip
    engine.fill(Fill(f"f{n}", "t", strategy, key, D(qty), D(price), D(fee), T0), T0)


def test_engine_when_every_limit_off_approves() -> None:
    assert _engine().decide(_intent(), T0) == []


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (replace(OPEN, strategy=StrategyLimits(max_order_qty=D("0.01"), max_order_notional=None,
                 max_position_notional=None, max_gross_notional=None, max_open_notional=None,
                 max_daily_loss=None, max_drawdown=None)), "max_order_qty"),
        (replace(OPEN, strategy=replace(OPEN.strategy, max_order_notional=D(100))),
         "max_order_notional"),
        (replace(OPEN, strategy=replace(OPEN.strategy, max_position_notional=D(100))),
         "max_position"),
        (replace(OPEN, account=replace(OPEN.account, max_position_notional=D(100))),
         "account_max_position"),
        (replace(OPEN, strategy=replace(OPEN.strategy, max_gross_notional=D(100))),
         "max_gross_exposure"),
        (replace(OPEN, account=replace(OPEN.account, max_gross_notional=D(100))),
         "account_max_gross_exposure"),
        (replace(OPEN, strategy=replace(OPEN.strategy, max_open_notional=D(100))),
         "max_open_notional"),
        (replace(OPEN, account=replace(OPEN.account, max_open_notional=D(100))),
         "account_max_open_notional"),
        (replace(OPEN, account=replace(OPEN.account, max_correlated_risk=D(100))),
         "correlated_risk"),
        (replace(OPEN, allowed_symbols=frozenset({ETH})), "symbol_not_allowed"),
    ],
)  # fmt: skip
def test_engine_when_one_limit_binds_returns_only_its_reason(limits: Limits, reason: str) -> None:
    assert _engine(limits).decide(_intent(), T0) == [reason]


def test_engine_when_many_limits_bind_returns_every_reason() -> None:
    tight = Limits(
        allowed_symbols=frozenset({ETH}),
        strategy=StrategyLimits(D("0.01"), D(1), D(1), D(1), D(1), None, None),
        account=AccountLimits(D(1), D(1), D(1), None, None, D(1)),
        guards=Guards(S, S, D(100), 0, 0, S, 0, S, 0),
    )
    engine = _engine(tight)
    engine.set_kill_switch(True)
    engine.pause(BTC)
    engine.feed(BTC, "quotes", "stale")

    reasons = engine.decide(_intent(), T0 + 2 * S)

    assert reasons == [
        "kill_switch",
        "symbol_paused",
        "data_quality_halt",
        "symbol_not_allowed",
        "stale_signal",
        "stale_reference_price",
        "max_order_qty",
        "max_order_notional",
        "max_position",
        "max_gross_exposure",
        "account_max_position",
        "account_max_gross_exposure",
        "max_open_notional",
        "account_max_open_notional",
        "correlated_risk",
    ]


def test_engine_when_no_reference_skips_price_checks_and_fails_closed() -> None:
    engine = RiskEngine(replace(OPEN, strategy=replace(OPEN.strategy, max_order_notional=D(1))))

    assert engine.decide(_intent(), T0) == ["no_reference_price"]


def test_engine_when_strategies_share_a_symbol_scopes_limits_per_strategy_and_account() -> None:
    limits = replace(
        OPEN,
        strategy=replace(OPEN.strategy, max_position_notional=D(30_000)),
        account=replace(OPEN.account, max_position_notional=D(40_000)),
    )
    engine = _engine(limits)
    _fill(engine, "0.45", "60000", strategy="a")  # 27,000 for a

    assert engine.decide(_intent("0.1", strategy="a"), T0) == ["max_position"]  # a: 33,000
    assert engine.decide(_intent("0.1", strategy="b"), T0) == []  # b: 6,000; account: 33,000
    assert engine.decide(_intent("0.25", strategy="b"), T0) == ["account_max_position"]
    assert engine.decide(_intent("-0.1", strategy="a"), T0) == []


def test_engine_when_strategy_override_applies_only_to_that_strategy() -> None:
    limits = replace(OPEN, overrides={"small": {"max_order_qty": D("0.05")}})
    engine = _engine(limits)

    assert engine.decide(_intent(strategy="small"), T0) == ["max_order_qty"]
    assert engine.decide(_intent(strategy="big"), T0) == []


def test_engine_when_open_order_outstanding_counts_it_in_exposure_and_open_notional() -> None:
    limits = replace(
        OPEN,
        strategy=replace(
            OPEN.strategy, max_position_notional=D(10_000), max_open_notional=D(10_000)
        ),
    )
    engine = _engine(limits)
    engine.accept(_intent("0.1", coid="tp0"), D(60_000), T0)  # 6,000 open

    assert engine.decide(_intent("0.07", coid="tp1"), T0) == [
        "max_position",
        "max_open_notional",
    ]
    engine.closed("tp0")
    assert engine.decide(_intent("0.07", coid="tp1"), T0) == []


def test_engine_when_daily_loss_breached_only_reducing_orders_pass() -> None:
    limits = replace(OPEN, strategy=replace(OPEN.strategy, max_daily_loss=D(500)))
    engine = _engine(limits)
    _fill(engine, "1", "60000", n=1)
    engine.quote(BTC, D(59_000), T0)  # 1,000 down on the day

    assert engine.decide(_intent("0.1"), T0) == ["daily_loss_limit"]
    assert engine.decide(_intent("-0.5"), T0) == []
    assert engine.decide(_intent("-1.5"), T0) == ["daily_loss_limit"]  # flips: new risk
    assert engine.decide(_intent("0.1", strategy="b"), T0) == []  # b lost nothing


def test_engine_when_account_drawdown_breached_blocks_new_risk_for_every_strategy() -> None:
    limits = replace(OPEN, account=replace(OPEN.account, max_drawdown=D(100)))
    engine = _engine(limits)
    _fill(engine, "1", "60000", n=1, fee="150")

    assert engine.decide(_intent("0.1", strategy="b"), T0) == ["account_max_drawdown"]
    assert engine.decide(_intent("-0.1", strategy="a"), T0) == []


def test_engine_when_fill_sets_a_peak_drawdown_counts_from_it() -> None:
    limits = replace(OPEN, strategy=replace(OPEN.strategy, max_drawdown=D(200)))
    engine = _engine(limits)
    _fill(engine, "1", "59000", n=1)  # 1,000 up at once against the 60,000 reference
    engine.quote(BTC, D(59_700), T0)  # 300 of it gone before the next decision

    assert engine.decide(_intent(), T0) == ["max_drawdown"]


def test_engine_when_drawdown_limit_set_again_rearms_it() -> None:
    limits = replace(OPEN, account=replace(OPEN.account, max_drawdown=D(100)))
    engine = _engine(limits)
    _fill(engine, "1", "60000", n=1, fee="150")
    assert engine.decide(_intent(), T0) == ["account_max_drawdown"]

    engine.set_limit("account_max_drawdown", "100")

    assert engine.decide(_intent(), T0) == []


def test_engine_when_approved_order_recorded_throttle_and_duplicates_see_it() -> None:
    limits = replace(OPEN, guards=Guards(0, 0, D(0), 1, 0, S, 0, S, S))
    engine = _engine(limits)
    engine.accept(_intent(coid="tp0"), D(60_000), T0)

    assert engine.decide(_intent(coid="tp0"), T0) == ["duplicate_order", "throttle_symbol"]
    assert engine.decide(_intent("0.2", coid="tp1"), T0 + S) == []


def test_engine_when_fill_counted_twice_books_it_once() -> None:
    engine = _engine()
    fill = Fill("tp0", "t1", "a", BTC, D("0.1"), D(60_000), D(1), T0)

    assert engine.fill(fill, T0).booked
    assert not engine.fill(fill, T0).booked

    assert engine.state.books.qty(BTC) == D("0.1")
    assert engine.state.books.account[BTC].fees == D(1)
