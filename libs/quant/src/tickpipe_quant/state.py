"""State as plain data, for snapshots: every slot of an object, recursively.

Indicators and bar builders keep everything they depend on in `__slots__`, so walking the
slots captures their whole state: a field added later is snapshotted without anyone
remembering to. Values stay Python floats (NaN included); the caller picks an encoding.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any


def _slot_names(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        slots = klass.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    return tuple(names)


def _dump(value: Any) -> Any:
    if isinstance(value, SlotState):
        return value.state()
    if isinstance(value, deque):
        return [_dump(v) for v in value]
    if isinstance(value, dict):  # JSON maps want string keys: keep the keys' types as pairs
        return [[k, _dump(v)] for k, v in value.items()]
    if isinstance(value, (int, float, str)) or value is None:
        return value
    raise TypeError(f"cannot snapshot a {type(value).__name__}")


def _load(current: Any, data: Any) -> Any:
    if isinstance(current, SlotState):
        current.load(data)
        return current
    if isinstance(current, deque):
        return deque(data, maxlen=current.maxlen)
    if isinstance(current, dict):
        raise TypeError("a map of objects needs its owner's _load_slot to rebuild it")
    return data


class SlotState:
    """`state()` returns the slots as plain data; `load()` puts them back into an object
    built with the same parameters (nested indicators and ring buffers are refilled in place).
    """

    __slots__ = ()

    def state(self) -> dict[str, Any]:
        return {name: _dump(getattr(self, name)) for name in _slot_names(type(self))}

    def load(self, state: Mapping[str, Any]) -> None:
        names = _slot_names(type(self))
        if set(state) != set(names):
            raise ValueError(
                f"{type(self).__name__}: snapshot holds {sorted(state)}, expected {sorted(names)}"
            )
        for name in names:
            setattr(self, name, self._load_slot(name, getattr(self, name), state[name]))

    def _load_slot(self, name: str, current: Any, data: Any) -> Any:
        """The restored value of one slot; override for slots the generic rules cannot build."""
        return _load(current, data)
