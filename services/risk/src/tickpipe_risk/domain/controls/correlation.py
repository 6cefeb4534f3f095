"""Correlation-aware exposure: the account's 1-sigma daily PnL, sqrt(wᵀ Σ w).

w holds the signed notional of each symbol held (positions plus open orders), and
Σ = diag(σ) C diag(σ) comes from configuration: a daily volatility per symbol and a
correlation per pair, with defaults for the ones not listed. Configured rather than estimated
on the fly: an estimate from a handful of recent bars swings most exactly when markets
break, which is when the limit must hold still. Floats: this is a statistical estimate
compared with a limit, not an amount of money booked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

REASON = "correlated_risk"


def pair(a: str, b: str) -> frozenset[str]:
    return frozenset((a, b))


@dataclass(frozen=True, slots=True)
class CorrelationModel:
    vols: Mapping[str, float] = field(default_factory=dict)  # key -> daily volatility
    correlations: Mapping[frozenset[str], float] = field(default_factory=dict)
    default_vol: float = 0.04  # crypto majors move ~3-5% a day
    default_correlation: float = 0.8  # and mostly together

    def vol(self, key: str) -> float:
        return self.vols.get(key, self.default_vol)

    def rho(self, a: str, b: str) -> float:
        return 1.0 if a == b else self.correlations.get(pair(a, b), self.default_correlation)

    def risk(self, notionals: Mapping[str, Decimal]) -> float:
        vols, default = self.vols, self.default_vol
        keys, scaled = [], []
        variance = 0.0
        for k, w in notionals.items():
            if w:
                s = float(w) * vols.get(k, default)
                keys.append(k)
                scaled.append(s)
                variance += s * s
        for i in range(len(keys)):
            for j in range(i + 1, len(keys)):
                variance += 2 * scaled[i] * scaled[j] * self.rho(keys[i], keys[j])
        return math.sqrt(max(variance, 0.0))  # rounding can leave -0.0 for hedged books

    def validate(self, keys: Iterable[str]) -> None:
        """Raises unless the correlation matrix over `keys` is positive semi-definite."""
        names = sorted(set(keys))
        for rho in self.correlations.values():
            if not -1.0 <= rho <= 1.0:
                raise ValueError(f"correlation {rho} outside [-1, 1]")
        n = len(names)
        # Cholesky with a small tolerance: a PSD matrix has no negative pivot.
        low = [[0.0] * n for _ in range(n)]
        for i in range(n):
            for j in range(i + 1):
                s = self.rho(names[i], names[j]) - sum(low[i][m] * low[j][m] for m in range(j))
                if i == j:
                    if s < -1e-9:
                        raise ValueError(f"correlations are not positive semi-definite ({names})")
                    low[i][i] = math.sqrt(max(s, 0.0))
                else:
                    low[i][j] = s / low[j][j] if low[j][j] > 1e-12 else 0.0


def check_correlated_risk(before: float, after: float, cap: Decimal | None) -> list[str]:
    limit = None if cap is None else float(cap)
    return [REASON] if limit is not None and after > limit and after > before else []
