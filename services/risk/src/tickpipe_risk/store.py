"""What risk writes to the cache: operator state and the books, for dashboards and the API.

Kafka is the source of truth: at start risk rebuilds operator state from `control.v1` and
its books from `orders.v1` and `executions.v1` (see `handlers.RiskHandler.on_start`); it
never reads this state back from the cache.
"""

from __future__ import annotations

import orjson

from tickpipe.cache.base import Cache
from tickpipe_risk.domain.books import Pnl
from tickpipe_risk.domain.positions import fmt
from tickpipe_risk.domain.state import RiskState


def kill_switch_key(account: str) -> str:
    return f"risk:{account}:kill_switch"


def controls_key(account: str) -> str:
    return f"risk:{account}:controls"


def pnl_dict(p: Pnl) -> dict[str, str]:
    return {
        "realized": fmt(p.realized),
        "unrealized": fmt(p.unrealized),
        "fees": fmt(p.fees),
        "net": fmt(p.net),
    }


class RiskStore:
    def __init__(self, cache: Cache, account: str) -> None:
        self._cache = cache
        self._account = account

    def save_kill_switch(self, on: bool) -> None:
        self._cache.set(kill_switch_key(self._account), b"1" if on else b"0")

    def save_controls(self, st: RiskState) -> None:
        controls = {
            "paused": sorted(st.halts.paused),
            "disabled": sorted([s, k] for s, k in st.fill_throttle.disabled),
            "limit_changes": st.limit_changes,
        }
        self._cache.set(controls_key(self._account), orjson.dumps(controls))

    def available(self) -> bool:
        """Whether the cache answers (positions and snapshots can be written)."""
        return self._cache.available()

    def publish_books(self, st: RiskState, key: str, strategy_id: str) -> dict[str, str]:
        """Positions and PnL of the account and of `strategy_id`; returns the account PnL."""
        mark, a = st.mark(key), self._account
        pnl = pnl_dict(st.books.pnl(st.mark))
        strategy_pnl = pnl_dict(st.books.pnl(st.mark, strategy_id))
        self._cache.set_many(
            {
                f"positions:{a}:{key}": orjson.dumps(st.books.account[key].as_dict(mark)),
                f"pnl:{a}": orjson.dumps(pnl),
                f"strategy_positions:{a}:{strategy_id}:{key}": orjson.dumps(
                    st.books.strategies[strategy_id][key].as_dict(mark)
                ),
                f"strategy_pnl:{a}:{strategy_id}": orjson.dumps(strategy_pnl),
            }
        )
        return pnl
