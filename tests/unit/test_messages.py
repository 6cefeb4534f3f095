"""Event models and the codec: round trips, decode failures, immutability, exact decimals."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from tests.unit import factories as f
from tickpipe.messages import (
    EVENT_TYPES,
    ControlAction,
    DecodeError,
    Event,
    FeatureVector,
    decode,
    encode,
)

SAMPLES: dict[str, Callable[[], Event]] = {
    "trade": f.trade,
    "quote": f.quote,
    "features": f.feature_vector,
    "signal": f.signal,
    "order": f.order,
    "execution": f.execution,
    "risk_decision": f.risk_decision,
    "control": f.control,
    "dead_letter": f.dead_letter,
    "data_quality": f.data_quality,
}


def test_samples_when_compared_to_registry_cover_every_event_type() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_codec_when_event_round_trips_returns_equal_event(event_type: str) -> None:
    event = SAMPLES[event_type]()

    decoded = decode(encode(event), event_type)

    assert type(decoded) is EVENT_TYPES[event_type]
    assert decoded == event


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_encode_when_any_event_payload_names_its_type(event_type: str) -> None:
    payload = orjson.loads(encode(SAMPLES[event_type]()))

    assert payload["type"] == event_type
    assert EVENT_TYPES[event_type].schema_version == 1


def test_decode_when_event_type_missing_raises_missing_event_type() -> None:
    with pytest.raises(DecodeError) as err:
        decode(encode(f.trade()), None)

    assert err.value.reason == "missing_event_type"


def test_decode_when_event_type_unknown_raises_unknown_event_type() -> None:
    with pytest.raises(DecodeError) as err:
        decode(encode(f.trade()), "candle")

    assert err.value.reason == "unknown_event_type"
    assert "candle" in err.value.detail


@pytest.mark.parametrize(
    "data",
    [b"not json at all", b"{}", b"", b'{"event_id": 1}'],
    ids=["garbage", "empty-object", "empty", "wrong-types"],
)
def test_decode_when_payload_invalid_raises_invalid_payload(data: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        decode(data, "trade")

    assert err.value.reason == "invalid_payload"


def test_decode_when_header_names_other_type_raises_invalid_payload() -> None:
    with pytest.raises(DecodeError) as err:
        decode(encode(f.quote()), "trade")

    assert err.value.reason == "invalid_payload"


def test_decode_when_payload_has_unknown_field_raises_invalid_payload() -> None:
    payload = orjson.loads(encode(f.trade()))
    payload["venue_flags"] = "x"

    with pytest.raises(DecodeError) as err:
        decode(orjson.dumps(payload), "trade")

    assert err.value.reason == "invalid_payload"
    assert "venue_flags" in err.value.detail


def test_event_when_field_assigned_raises() -> None:
    tick = f.trade()

    with pytest.raises(ValidationError):
        tick.price = 1.0  # type: ignore[misc]  # assigning to a frozen model is the point

    assert tick.price == 60_000.0


def test_event_when_constructed_with_extra_field_raises() -> None:
    with pytest.raises(ValidationError):
        f.trade(venue_flags="x")


def test_order_when_encoded_serializes_decimals_as_strings() -> None:
    order = f.order(quantity=Decimal("0.00100"), reference_price=Decimal("61837.63"))

    payload = orjson.loads(encode(order))

    assert payload["quantity"] == "0.00100"
    assert payload["reference_price"] == "61837.63"


def test_execution_when_round_tripped_keeps_decimals_exact() -> None:
    report = f.execution(fee=Decimal("0.1") + Decimal("0.2"))

    decoded = decode(encode(report), "execution")

    assert isinstance(decoded, type(report))
    assert decoded.fee == Decimal("0.3")
    assert orjson.loads(encode(report))["last_price"] == "60006.01"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("field", ["price", "size"])
def test_trade_when_price_or_size_not_finite_is_refused(field: str, bad: float) -> None:
    with pytest.raises(ValidationError):
        f.trade(**{field: bad})


@pytest.mark.parametrize("literal", [b'"NaN"', b'"Infinity"', b"NaN", b"-Infinity"])
def test_decode_when_trade_price_not_finite_raises_invalid_payload(literal: bytes) -> None:
    payload = encode(f.trade()).replace(b'"price":60000.0', b'"price":' + literal)
    assert literal in payload

    with pytest.raises(DecodeError) as err:
        decode(payload, "trade")

    assert err.value.reason == "invalid_payload"
    assert "price" in err.value.detail


def test_trade_when_price_not_positive_is_refused() -> None:
    with pytest.raises(ValidationError):
        f.trade(price=0.0)


def test_feature_vector_when_value_is_nan_round_trips_as_nan() -> None:
    values = dict(f.feature_vector().values, rsi_14=math.nan)
    vector = f.feature_vector(values=values)

    decoded = decode(encode(vector), "features")

    assert isinstance(decoded, FeatureVector)
    assert math.isnan(decoded.values["rsi_14"])


def test_order_when_client_order_id_too_long_is_refused() -> None:
    with pytest.raises(ValidationError):
        f.order(client_order_id="x" * 37)


def test_instrument_key_when_built_joins_exchange_and_symbol() -> None:
    assert f.trade().key == "binance:BTC/USDT"
    assert f.order(exchange="kraken", symbol="BTC/USD").key == "kraken:BTC/USD"


def test_control_compaction_key_when_families_differ_then_keys_differ() -> None:
    kill = f.control(ControlAction.KILL_SWITCH_ON, target="*")
    limit = f.control(
        ControlAction.SET_LIMIT, target="*", args={"name": "max_order_qty", "value": "1"}
    )
    other_limit = f.control(
        ControlAction.SET_LIMIT, target="*", args={"name": "max_drawdown", "value": "1"}
    )
    off = f.control(ControlAction.KILL_SWITCH_OFF, target="*")
    assert kill.compaction_key == off.compaction_key == "kill_switch:*"
    assert len({kill.compaction_key, limit.compaction_key, other_limit.compaction_key}) == 3
