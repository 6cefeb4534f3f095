"""Handler state <-> bytes: JSON whose floats read back bit for bit, NaN and infinities too.

orjson writes the shortest string that reads back to the same double, but writes NaN and
±inf as `null`; warming indicators are full of NaN, so non-finite floats travel tagged.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

_TAG = "$float"


def _tag(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {_TAG: repr(value)}  # 'nan', 'inf', '-inf': float() reads them back
    if isinstance(value, dict):
        return {k: _tag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _TAG in value:
            return float(value[_TAG])
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def dumps(state: Any) -> bytes:
    return orjson.dumps(_tag(state))


def loads(data: bytes) -> Any:
    return _untag(orjson.loads(data))
