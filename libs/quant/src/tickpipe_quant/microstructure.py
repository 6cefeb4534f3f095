"""Top-of-book and order-flow numbers: pure functions of the latest quote or of volumes."""

from __future__ import annotations

import math


def mid(bid: float, ask: float) -> float:
    return (bid + ask) / 2.0


def microprice(bid: float, ask: float, bid_size: float, ask_size: float) -> float:
    """Size-weighted mid: leans toward the side with less size, where the price is likelier
    to move. The mid when the book shows no size at all."""
    depth = bid_size + ask_size
    return (bid * ask_size + ask * bid_size) / depth if depth > 0 else mid(bid, ask)


def spread_bps(bid: float, ask: float) -> float:
    return (ask - bid) / mid(bid, ask) * 1e4


def bps(x: float, reference: float) -> float:
    """(x - reference) / reference in basis points."""
    return (x - reference) / reference * 1e4


def imbalance(buy: float, sell: float) -> float:
    """(buy - sell) / (buy + sell) in [-1, 1]; 0 when nothing traded, NaN while undefined."""
    return share(buy - sell, buy + sell)


def share(part: float, whole: float) -> float:
    """part / whole; 0 when `whole` is 0 (nothing to compare with), NaN while it is NaN."""
    if whole > 0:
        return part / whole
    return 0.0 if whole == 0 else math.nan
