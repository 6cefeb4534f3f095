"""Risk configuration: `TICKPIPE_RISK_*` variables become limits, controls and models."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from tickpipe_risk.app import RiskSettings
from tickpipe_risk.domain.controls.correlation import pair

BTC, ETH = "binance:BTC/USDT", "binance:ETH/USDT"


def test_risk_settings_when_unset_defaults_keep_every_control_on() -> None:
    limits = RiskSettings(_env_file=None).limits()

    assert limits.strategy.max_order_notional == Decimal(25_000)
    assert limits.account.max_correlated_risk == Decimal(10_000)
    assert limits.guards.max_signal_age_ns == 5_000_000_000
    assert limits.guards.max_orders_per_symbol == 10
    assert limits.allowed_symbols == frozenset()


def test_risk_settings_when_variables_set_change_the_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "TICKPIPE_RISK_MAX_DRAWDOWN": "none",
        "TICKPIPE_RISK_ACCOUNT_MAX_GROSS_NOTIONAL": "123456.78",
        "TICKPIPE_RISK_STRATEGY_LIMITS": '{"momo": {"max_order_qty": "0.5"}}',
        "TICKPIPE_RISK_ALLOWED_SYMBOLS": f'["{BTC}"]',
        "TICKPIPE_RISK_ORDER_WINDOW_S": "2.5",
        "TICKPIPE_RISK_DUPLICATE_WINDOW_S": "0",
    }.items():
        monkeypatch.setenv(name, value)

    limits = RiskSettings(_env_file=None).limits()

    assert limits.strategy.max_drawdown is None
    assert limits.account.max_gross_notional == Decimal("123456.78")
    assert limits.for_strategy("momo").max_order_qty == Decimal("0.5")
    assert limits.for_strategy("other").max_order_qty == Decimal(5)
    assert limits.allowed_symbols == frozenset({BTC})
    assert limits.guards.order_window_ns == 2_500_000_000
    assert limits.guards.duplicate_window_ns == 0


def test_risk_settings_when_strategy_override_names_unknown_limit_fails_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKPIPE_RISK_STRATEGY_LIMITS", '{"momo": {"max_leverage": "3"}}')

    with pytest.raises(ValidationError, match="max_leverage"):
        RiskSettings(_env_file=None)


def test_risk_settings_when_correlations_given_builds_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKPIPE_RISK_VOLS", f'{{"{BTC}": 0.03}}')
    monkeypatch.setenv("TICKPIPE_RISK_CORRELATIONS", f'{{"{BTC}|{ETH}": 0.6}}')

    model = RiskSettings(_env_file=None).correlation()

    assert model.vol(BTC) == 0.03
    assert model.vol(ETH) == 0.04
    assert model.correlations == {pair(BTC, ETH): 0.6}


@pytest.mark.parametrize(
    "correlations",
    [
        '{"binance:BTC/USDT": 0.5}',  # not a pair
        '{"a|b": 0.95, "a|c": 0.95, "b|c": -0.95}',  # not positive semi-definite
    ],
)
def test_risk_settings_when_correlations_invalid_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, correlations: str
) -> None:
    monkeypatch.setenv("TICKPIPE_RISK_CORRELATIONS", correlations)

    with pytest.raises(ValueError, match="correlation"):
        RiskSettings(_env_file=None).correlation()


def test_risk_settings_when_breaker_configured_converts_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKPIPE_RISK_CB_OPEN_S", "12")
    monkeypatch.setenv("TICKPIPE_RISK_CB_SLOW_S", "0.25")

    cfg = RiskSettings(_env_file=None).breaker()

    assert (cfg.open_ns, cfg.slow_ns) == (12_000_000_000, 250_000_000)


def test_risk_settings_when_unset_equal_the_domain_defaults_for_every_limit() -> None:
    """One place for defaults: the domain's dataclasses; every limit `set_limit` knows is a
    setting of the same name."""
    from tickpipe_risk.domain.limits import LIMIT_NAMES, Limits

    settings = RiskSettings.model_construct()  # the declared defaults, no environment
    assert set(RiskSettings.model_fields) >= LIMIT_NAMES
    assert settings.limits() == Limits()
