"""What risk keeps in the cache: operator state, read back at start, and the books.

Kafka is the source of truth and the snapshot restores everything; the cache lets operator
state (kill switch, pauses, disabled strategies, changed limits) survive a restart without a
snapshot, and shows positions and PnL to dashboards.
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

    def load_controls(self, st: RiskState) -> None:
        st.halts.kill_switch = self._cache.get(kill_switch_key(self._account)) == b"1"
        raw = self._cache.get(controls_key(self._account))
        if raw is None:
            return
        saved = orjson.loads(raw)
        st.halts.paused = set(saved["paused"])
        st.fill_throttle.disabled = {(s, k) for s, k in saved["disabled"]}
        for name, value, strategy_id in saved["limit_changes"]:
            st.set_limit(name, value, strategy_id)

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
