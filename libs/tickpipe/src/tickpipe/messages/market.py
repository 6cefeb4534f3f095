"""Market data events: trades and top-of-book quotes (floats: they feed analytics, not orders)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from tickpipe.messages.base import Event

Side = Literal["buy", "sell"]


class Instrument(Event):
    """Fields shared by every per-instrument event; the Kafka key is `exchange:symbol`."""

    event_type: ClassVar[str] = "instrument"
    exchange: str = Field(min_length=1, description="ccxt exchange id, e.g. `binance`.")
    symbol: str = Field(min_length=1, description="ccxt unified symbol, e.g. `BTC/USDT`.")

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.symbol}"


class TradeTick(Instrument):
    """A public trade printed by the exchange."""

    event_type: ClassVar[str] = "trade"
    type: Literal["trade"] = "trade"
    trade_id: str = Field(min_length=1)
    price: float = Field(gt=0, allow_inf_nan=False)
    size: float = Field(gt=0, allow_inf_nan=False)
    side: Side = Field(description="Aggressor side: `buy` when the buyer took liquidity.")
    ingest_seq: int | None = Field(
        default=None,
        ge=0,
        description="Ingest's arrival number for this instrument, shared by its trades and "
        "quotes: a consumer of both topics restores the order they arrived in.",
    )


class QuoteTick(Instrument):
    """Best bid and offer."""

    event_type: ClassVar[str] = "quote"
    type: Literal["quote"] = "quote"
    bid: float = Field(gt=0, allow_inf_nan=False)
    bid_size: float = Field(ge=0, allow_inf_nan=False)
    ask: float = Field(gt=0, allow_inf_nan=False)
    ask_size: float = Field(ge=0, allow_inf_nan=False)
    ingest_seq: int | None = Field(
        default=None,
        ge=0,
        description="Ingest's arrival number for this instrument, shared by its trades and "
        "quotes: a consumer of both topics restores the order they arrived in.",
    )
