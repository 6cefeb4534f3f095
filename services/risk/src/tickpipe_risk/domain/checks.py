"""Pre-trade checks: every control, composed, on one prospective order.

`PreTradeChecks.run` returns every failing reason code (empty: approved), in a fixed order.
Strategy-scope limits use the strategy's own book; account-scope ones (`account_...`) the
sum of all strategies. Checks that need a price are skipped when none is known: the missing
reference already refuses the order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from tickpipe_risk.domain.controls import exposure as ex
from tickpipe_risk.domain.controls.allowlist import check_allowlist
from tickpipe_risk.domain.controls.circuit import BreakerConfig
from tickpipe_risk.domain.controls.collar import check_collar
from tickpipe_risk.domain.controls.correlation import CorrelationModel, check_correlated_risk
from tickpipe_risk.domain.controls.duplicates import Fingerprint
from tickpipe_risk.domain.controls.freshness import check_reference, check_signal_age
from tickpipe_risk.domain.controls.open_orders import REASON as MAX_OPEN
from tickpipe_risk.domain.controls.open_orders import check_open_notional
from tickpipe_risk.domain.controls.order_size import check_order_size
from tickpipe_risk.domain.limits import AccountLimits, Limits, StrategyLimits
from tickpipe_risk.domain.state import RiskState

__all__ = ["Intent", "Limits", "PreTradeChecks"]

ACCOUNT = "account_"


class Intent(NamedTuple):
    """One prospective order (a tuple: built for every signal, it must be cheap)."""

    strategy_id: str
    key: str
    qty: Decimal  # signed, at exchange precision, non-zero
    limit_price: Decimal | None  # None: a market order
    signal_ts: int  # arrival (ts_init) of the signal it comes from
    client_order_id: str

    @property
    def fingerprint(self) -> Fingerprint:
        limit = "" if self.limit_price is None else str(self.limit_price.normalize())
        return (self.strategy_id, self.key, str(self.qty.normalize()), limit)


@dataclass(frozen=True, slots=True)
class PreTradeChecks:
    correlation: CorrelationModel = field(default_factory=CorrelationModel)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)

    def run(self, o: Intent, st: RiskState, now_ns: int, market_ns: int | None = None) -> list[str]:
        """`now_ns` judges staleness; `market_ns` (default `now_ns`) runs the windows."""
        market = now_ns if market_ns is None else market_ns
        g = st.limits.guards
        sl = st.strategy_limits(o.strategy_id)
        ref = st.refs.get(o.key)
        # Positions plus open orders, the strategy's and the account's: read by the exposure
        # and the loss checks alike, so gathered once.
        mine, account = st.exposures(o.strategy_id), st.exposures()
        reasons = st.halts.check(o.key)
        reasons += st.fill_throttle.check(o.strategy_id, o.key)
        reasons += st.breaker(o.key).check(market, self.breaker)
        reasons += check_allowlist(o.key, st.limits.allowed_symbols)
        reasons += check_signal_age(o.signal_ts, now_ns, g.max_signal_age_ns)
        reasons += check_reference(None if ref is None else ref.ts, now_ns, g.max_reference_age_ns)
        if ref is not None:
            reasons += check_collar(o.limit_price, ref.price, g.collar_bps)
        price = o.limit_price if o.limit_price is not None else ref.price if ref else None
        reasons += check_order_size(abs(o.qty), price, sl.max_order_qty, sl.max_order_notional)
        if price is not None:
            reasons += self._exposure(o, st, price, sl, st.limits.account, mine, account)
        reasons += st.loss_guard(o.strategy_id).check(ex.reduces(mine.get(o.key, ex.ZERO), o.qty))
        reasons += st.account_loss.check(ex.reduces(account.get(o.key, ex.ZERO), o.qty), ACCOUNT)
        reasons += st.duplicates.check(
            o.client_order_id, o.fingerprint, market, g.duplicate_window_ns
        )
        reasons += st.order_throttle.check(
            o.key, market, g.order_window_ns, g.max_orders_per_symbol, g.max_orders_global
        )
        return reasons

    def _exposure(
        self,
        o: Intent,
        st: RiskState,
        price: Decimal,
        sl: StrategyLimits,
        al: AccountLimits,
        mine: dict[str, Decimal],
        account: dict[str, Decimal],
    ) -> list[str]:
        prices = {k: st.price(k) for k in {*mine, *account}}
        prices[o.key] = price  # the order's own symbol at the order's price, before and after
        reasons = ex.check_exposure(
            mine, prices, o.key, o.qty, sl.max_position_notional, sl.max_gross_notional
        )
        reasons += ex.check_exposure(
            account,
            prices,
            o.key,
            o.qty,
            al.max_position_notional,
            al.max_gross_notional,
            ACCOUNT,
        )
        notional = abs(o.qty) * price
        reasons += check_open_notional(
            st.open_orders.notional(o.strategy_id), notional, sl.max_open_notional
        )
        reasons += check_open_notional(
            st.open_orders.notional(), notional, al.max_open_notional, ACCOUNT + MAX_OPEN
        )
        if al.max_correlated_risk is not None:
            reasons += self._correlated(o, price, account, prices, al.max_correlated_risk)
        return reasons

    def _correlated(
        self,
        o: Intent,
        price: Decimal,
        account: dict[str, Decimal],
        prices: dict[str, Decimal],
        cap: Decimal,
    ) -> list[str]:
        # After the order: its symbol at (held + qty) × the order's price, exactly what the
        # held notional plus the order's would be.
        after = {k: q * prices[k] for k, q in account.items()}
        after[o.key] = (account.get(o.key, ex.ZERO) + o.qty) * price
        risk_after = self.correlation.risk(after)
        if risk_after <= float(cap):
            return []  # only growth past the cap refuses: the risk before matters only then
        before = {k: q * prices[k] for k, q in account.items()}
        return check_correlated_risk(self.correlation.risk(before), risk_after, cap)
