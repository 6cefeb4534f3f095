"""Ingest composition: settings -> a file replay, synthetic generator or exchange source."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tickpipe.marketdata import SyntheticConfig, parse_columns
from tickpipe.service import ServiceContext, ServiceSpec, Source
from tickpipe.topics import DLQ, QUALITY, QUOTES, TRADES
from tickpipe_ingest.domain.validation import Validator
from tickpipe_ingest.generator import GeneratorSource
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.quality import QualityReporter
from tickpipe_ingest.replay import FileReplaySource

DEFAULT_SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
CREDENTIAL_KEYS = {"apiKey", "secret", "password", "uid", "privateKey", "walletAddress", "token"}


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(",") if s.strip())
    return value


class IngestSettings(BaseSettings):
    """`TICKPIPE_INGEST_*`. Lists (`FILE`, `SYMBOLS`) are comma-separated."""

    # Errors never echo values back: a mistaken key in CCXT_CONFIG must not reach the logs.
    model_config = SettingsConfigDict(
        env_prefix="TICKPIPE_INGEST_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    source: Literal["file", "generator", "exchange"] = "file"
    # file
    file: Annotated[tuple[Path, ...], NoDecode] = (DEFAULT_SAMPLE,)
    format: Literal["auto", "binance_capture", "csv", "json", "parquet"] = "auto"
    columns: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="A table's columns where their names are not known ones: "
        "`time=ts_ms,price=px,amount=qty,side=side` (docs/data-formats.md).",
    )
    speed: float = Field(default=0.0, ge=0, description="× real time; 0 = maximum speed.")
    rate: float | None = Field(default=None, gt=0, description="Records per second.")
    loops: int = Field(default=1, ge=1)
    limit: int | None = Field(default=None, ge=1, description="Stop after this many records.")
    resume: bool | None = Field(
        default=None,
        description="Carry on after what ingest's topics already hold (file: the last record "
        "published; exchange: the last trade id). Unset: on over Kafka, off in memory.",
    )
    start: datetime | None = Field(default=None, description="File replay from this time (UTC).")
    end: datetime | None = Field(default=None, description="File replay up to this time.")
    exchange: str | None = Field(
        default=None,
        description="ccxt id (exchange source), name of the feed (generator), or the exchange "
        "of a file that does not name one.",
    )
    symbol: str | None = Field(default=None, description="Symbol of a file that has none.")
    # exchange and generator
    symbols: Annotated[tuple[str, ...], NoDecode] = ()
    # generator
    seed: int = 0
    symbol_count: int = Field(default=10, ge=1)
    trade_ratio: float = Field(default=0.3, gt=0, le=1)
    # exchange
    transport: Literal["auto", "ws", "rest"] = "auto"
    trades: bool = True
    quotes: Literal["auto", "bids_asks", "ticker", "order_book", "none"] = "auto"
    poll_interval_s: float = Field(default=1.0, gt=0)
    stale_after_s: float = Field(default=30.0, gt=0)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    rate_capacity: float = Field(default=1.0, gt=0, description="Token-bucket burst.")
    queue_size: int = Field(default=10_000, ge=1)
    ccxt_config: dict[str, Any] = Field(
        default_factory=dict, description="JSON merged into ccxt's config (urls, options)."
    )

    @field_validator("file", "symbols", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return (value,) if isinstance(value, Path) else _split(value)

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, value: Any) -> Any:
        # `time=ts_ms,price=px` (the environment, --columns) or a mapping (a TOML table).
        return parse_columns(value) if isinstance(value, str | dict) else value

    @field_validator("ccxt_config")
    @classmethod
    def _no_credentials(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Ingest reads public market data: keys have no business in (loggable) settings.
        found = sorted(CREDENTIAL_KEYS & set(value))
        if found:
            raise ValueError(f"ingest needs no credentials; remove {found} from ccxt_config")
        return value


def build(ctx: ServiceContext, settings: IngestSettings) -> Source:
    # A source may run forever (exchange, generator): it ends between records once the
    # service's stop event is set (SIGTERM/SIGINT in a process).
    stop = ctx.stop
    if settings.source == "generator":
        return _generator(ctx, settings, stop)
    if settings.source == "exchange":
        return _exchange(ctx, settings, stop)
    return _file(ctx, settings, stop)


def _resume(ctx: ServiceContext, settings: IngestSettings) -> bool:
    """Resume is on by default where there is something to resume from: a Kafka bus. An
    in-memory bus (the embedded demo, backtests) starts empty anyway."""
    return settings.resume if settings.resume is not None else ctx.platform.bus == "kafka"


def _normalizer(ctx: ServiceContext, source: str, live: bool) -> Normalizer:
    quality = QualityReporter(source)
    validator = Validator(quality=quality)
    return Normalizer(ctx.clock, ctx.ids, source, validator, live=live, quality=quality)


def _file(ctx: ServiceContext, settings: IngestSettings, stop: threading.Event) -> Source:
    missing = [str(p) for p in settings.file if not p.exists()]
    if missing or not settings.file:
        raise SystemExit(f"ingest: input file not found: {', '.join(missing) or '(none)'}")
    name = "+".join(p.name for p in settings.file)
    try:
        return FileReplaySource(
            list(settings.file),
            _normalizer(ctx, f"file:{name}", live=False),
            ctx.clock,
            fmt=settings.format,
            exchange=settings.exchange,
            symbol=settings.symbol,
            columns=settings.columns,
            speed=settings.speed,
            rate=settings.rate,
            loops=settings.loops,
            limit=settings.limit,
            start_ns=_ns(settings.start),
            end_ns=_ns(settings.end),
            stop=stop,
            resume=_resume(ctx, settings),
        )
    except ValueError as exc:
        raise SystemExit(f"ingest: {exc}") from exc  # the reader's message names the file


def _ns(t: datetime | None) -> int | None:
    if t is None:
        return None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)  # naive times are UTC, as in the data
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1_000


def _generator(ctx: ServiceContext, settings: IngestSettings, stop: threading.Event) -> Source:
    config = SyntheticConfig(
        exchange=settings.exchange or "synthetic",
        symbols=settings.symbols,
        symbol_count=settings.symbol_count,
        rate=settings.rate or 1_000.0,
        trade_ratio=settings.trade_ratio,
        seed=settings.seed,
    )
    return GeneratorSource(
        config,
        _normalizer(ctx, f"generator:{config.exchange}", live=True),
        ctx.clock,
        paced=settings.rate is not None,
        limit=settings.limit,
        stop=stop,
    )


def _exchange(ctx: ServiceContext, settings: IngestSettings, stop: threading.Event) -> Source:
    # Imported here: ccxt takes a while to import and only this source needs it.
    from tickpipe_ingest.exchange import ExchangeConfig, ExchangeSource

    if not settings.exchange or not settings.symbols:
        raise SystemExit("ingest: the exchange source needs TICKPIPE_INGEST_EXCHANGE and _SYMBOLS")
    config = ExchangeConfig(
        exchange=settings.exchange,
        symbols=settings.symbols,
        transport=settings.transport,
        trades=settings.trades,
        quotes=settings.quotes,
        poll_interval_s=settings.poll_interval_s,
        stale_after_s=settings.stale_after_s,
        backoff_initial_s=settings.backoff_initial_s,
        backoff_max_s=settings.backoff_max_s,
        rate_capacity=settings.rate_capacity,
        queue_size=settings.queue_size,
        ccxt_config=settings.ccxt_config,
    )
    quality = QualityReporter(config.source)
    validator = Validator(quality=quality)
    normalize = Normalizer(ctx.clock, ctx.ids, config.source, validator, live=True, quality=quality)
    return ExchangeSource(
        config,
        normalize,
        ctx.clock,
        quality,
        limit=settings.limit,
        stop=stop,
        resume=_resume(ctx, settings),
    )


SERVICE = ServiceSpec(
    name="ingest",
    order=10,
    inputs=(),
    outputs=(TRADES, QUOTES, QUALITY, DLQ),
    settings=IngestSettings,
    build=build,
    default_http_port=9101,
)
