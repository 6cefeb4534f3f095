"""The feature registry: every feature defined once, with both of its halves.

A `Feature` holds a feature's name, its streaming half (a Python expression evaluated on
every bar by the feature service and backtests) and its batch half (a function returning the
polars expression of the same quantity, for training and backfills). Features that share
state (MACD's lines, the Bollinger numbers) read one `Component`: an incremental indicator,
updated once per bar, beside the polars expressions of the values it exposes. A
`FeatureSet` is the ordered entries; `features.py` holds the live one.

The streaming halves are expression strings rather than functions because `on_bar` is hot:
the set compiles all of them into one function (as `dataclasses` builds `__init__`), which
costs what the handwritten engine cost. A callable per feature added ~25% per bar. The names
the strings read are checked when the set is built, and every entry is held equal to its
batch half by `tests/unit/test_batch_parity.py`.

The set's name is the bar interval and a digest of its entries in order (names, indicator
classes, parameters, streaming expressions, revisions): change a definition and the name
changes, so inference refuses vectors its model was not trained on. A change the digest
cannot see (inside an indicator class, or in a batch half alone) needs the entry's
`revision` bumped.

Nothing here imports polars until a batch half runs: the feature service needs no polars.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import importlib
import json
import linecache
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from tickpipe_quant.bars import Bar
from tickpipe_quant.state import SlotState

Params = Mapping[str, int | float]
BarFn = Callable[[Any, Bar], dict[str, float] | None]

# What a streaming expression reads besides components, the set's helpers and builtins: the
# bar, its close, the latest quote (NaN before the first) and `math`.
QUOTE = ("bid", "ask", "bid_size", "ask_size")
BAR_LOCALS = ("bar", "close", *QUOTE)
_GLOBALS = {"math": math}
_RESERVED = frozenset((*BAR_LOCALS, "self"))


class _LazyModule(ModuleType):
    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attr)


def lazy_module(name: str) -> Any:
    """`name`, imported on first attribute access. Batch halves are written against polars,
    which the streaming side does without (importing it costs ~0.35 s and ~50 MB)."""
    return _LazyModule(name)


if TYPE_CHECKING:
    import polars as pl
else:
    pl = lazy_module("polars")


def _expression(owner: str, what: str, source: object) -> ast.Expression:
    if not isinstance(source, str) or not source.strip():
        raise TypeError(f"{owner}: no {what} (a Python expression string), got {source!r}")
    try:
        return ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{owner}: {what} {source!r} is not an expression: {exc.msg}") from exc


def _arguments(owner: str, source: object) -> ast.Expression:
    """An update's argument list, parsed as the call it becomes."""
    if not isinstance(source, str):
        raise TypeError(f"{owner}: update must be its arguments as a string, got {source!r}")
    return _expression(owner, "update", f"update({source.strip()})")


def _reads(tree: ast.AST) -> set[str]:
    """Free names an expression loads (names it binds itself, e.g. in a comprehension, aside)."""
    loads: set[str] = set()
    stores: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else stores).add(node.id)
        elif isinstance(node, ast.arg):
            stores.add(node.arg)
    return loads - stores - {"update"}


def _squeezed(source: str) -> str:
    # Layout is not definition: whitespace stays out of the digest.
    return "".join(source.split())


@dataclass(frozen=True, eq=False)
class Component:
    """Streaming state shared by features, and its batch twin.

    `indicator(**params)` builds the streaming half, whose `update` gets `update` (argument
    expressions over the bar, e.g. ``"bar.high, bar.low, close"``) once per bar; streaming
    expressions read its attributes as ``name.attr``. `batch(inputs, **params)` returns the
    polars expressions of those attributes by name; batch halves read them as
    ``x["name.attr"]``.
    """

    name: str
    indicator: Callable[..., SlotState]
    update: str
    batch: Callable[..., Mapping[str, pl.Expr]]
    params: Params = field(default_factory=dict)
    revision: int = 0

    def __post_init__(self) -> None:
        owner = f"component {self.name!r}"
        if not self.name.isidentifier() or self.name.startswith("_") or self.name in _RESERVED:
            raise ValueError(
                f"{owner}: a component name is a public identifier, none of {sorted(_RESERVED)}"
            )
        if not callable(self.indicator):
            raise TypeError(f"{owner}: no streaming half (indicator=), got {self.indicator!r}")
        _arguments(owner, self.update)
        if not callable(self.batch):
            raise TypeError(f"{owner}: no batch half (batch=), got {self.batch!r}")


@dataclass(frozen=True, eq=False)
class Feature:
    """One feature: its name, its streaming half `stream` (an expression over the bar, the
    quote, the components and the set's helpers) and its batch half `batch` (inputs ->
    polars expression). `exact`: both halves agree bit for bit; False where polars' rolling
    kernels and the streaming running sums round differently (the parity test then allows
    1e-9 relative)."""

    name: str
    stream: str
    batch: Callable[[BatchInputs], pl.Expr]
    exact: bool = True
    revision: int = 0

    def __post_init__(self) -> None:
        owner = f"feature {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a feature needs a name, got {self.name!r}")
        _expression(owner, "streaming half (stream=)", self.stream)
        if not callable(self.batch):
            raise TypeError(f"{owner}: no batch half (batch=), got {self.batch!r}")


class FeatureSet:
    """Ordered, validated feature entries: their names, digest, streaming engine code and
    polars expressions."""

    def __init__(
        self,
        components: Sequence[Component],
        features: Sequence[Feature],
        helpers: Sequence[Callable[..., Any]] = (),
    ) -> None:
        for entry in (*components, *features):
            if not isinstance(entry, (Component, Feature)):
                raise TypeError(f"not a registry entry: {entry!r}")
        self.components = tuple(components)
        self.features = tuple(features)
        self.names: tuple[str, ...] = tuple(f.name for f in self.features)
        self.helpers = {h.__name__: h for h in helpers}
        self._check()
        self.digest = self._digest()
        self._on_bar: BarFn | None = None

    def _check(self) -> None:
        if not self.features:
            raise ValueError("a feature set needs at least one feature")
        for kind, names in (
            ("feature", self.names),
            ("component", [c.name for c in self.components]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind} names registered twice: {dupes}")
        known = {*BAR_LOCALS, *_GLOBALS, *self.helpers, *dir(builtins)}
        shadowed = sorted({c.name for c in self.components} & known)
        if shadowed:
            raise ValueError(f"components named like a helper or builtin: {shadowed}")
        used: set[str] = set()
        for c in self.components:  # in update order: a component reads only earlier ones
            reads = _reads(_arguments(c.name, c.update))
            self._check_reads(f"component {c.name!r}", reads, known)
            known.add(c.name)
            used |= reads
        for f in self.features:
            reads = _reads(_expression(f.name, "stream", f.stream))
            self._check_reads(f"feature {f.name!r}", reads, known)
            used |= reads
        idle = [c.name for c in self.components if c.name not in used]
        if idle:
            raise ValueError(f"components no feature reads: {idle}")

    @staticmethod
    def _check_reads(owner: str, reads: set[str], known: set[str]) -> None:
        unknown = sorted(reads - known)
        if unknown:
            raise ValueError(
                f"{owner}: unknown names {unknown} (known: {list(BAR_LOCALS)}, math, "
                "components registered before, the set's helpers, builtins)"
            )

    def _digest(self) -> str:
        spec: list[tuple[object, ...]] = [
            (
                c.name,
                c.indicator.__name__,
                _squeezed(c.update),
                sorted(c.params.items()),
                c.revision,
            )
            for c in self.components
        ]
        spec += [(f.name, _squeezed(f.stream), f.revision) for f in self.features]
        canonical = json.dumps(spec, separators=(",", ":")).encode()
        return hashlib.sha256(canonical).hexdigest()[:8]

    def set_name(self, interval_ns: int) -> str:
        """`bars1s.<digest>`, `bars1m.<digest>`, `bars250ms.<digest>`: the interval and the
        definitions are both part of the contract."""
        if interval_ns % 60_000_000_000 == 0:
            label = f"{interval_ns // 60_000_000_000}m"
        elif interval_ns % 1_000_000_000 == 0:
            label = f"{interval_ns // 1_000_000_000}s"
        elif interval_ns % 1_000_000 == 0:
            label = f"{interval_ns // 1_000_000}ms"
        else:
            label = f"{interval_ns}ns"
        return f"bars{label}.{self.digest}"

    # -- streaming ------------------------------------------------------------------------
    def build(self) -> tuple[SlotState, ...]:
        """Fresh streaming state: one indicator per component, in update order."""
        return tuple(c.indicator(**c.params) for c in self.components)

    @property
    def streaming_source(self) -> str:
        """The source of `on_bar`: every component's update, then every feature's value;
        None while any is NaN (warming up), else the vector in set order."""
        reads: set[str] = set()
        for c in self.components:
            reads |= _reads(_arguments(c.name, c.update))
        for f in self.features:
            reads |= _reads(_expression(f.name, "stream", f.stream))
        lines = ["def on_bar(self, bar):", "    close = bar.close"]
        quote = [q for q in QUOTE if q in reads]
        if quote:
            lines.append(f"    {', '.join(quote)} = {', '.join(f'self._{q}' for q in quote)}")
        if self.components:
            lines.append(f"    {', '.join(c.name for c in self.components)}, = self._parts")
        lines += [f"    {c.name}.update({c.update.strip()})" for c in self.components]
        lines += [f"    _{i} = ({f.stream.strip()})" for i, f in enumerate(self.features)]
        # NaN is the one float unequal to itself: the cheapest exact check.
        nan = " or ".join(f"_{i} != _{i}" for i in range(len(self.features)))
        lines += [f"    if {nan}:", "        return None"]
        pairs = ", ".join(f"{f.name!r}: _{i}" for i, f in enumerate(self.features))
        lines.append(f"    return {{{pairs}}}")
        return "\n".join(lines) + "\n"

    def on_bar(self) -> BarFn:
        """`on_bar(engine, bar)`, compiled from the entries (once per set)."""
        if self._on_bar is None:
            source = self.streaming_source
            filename = f"<tickpipe feature set {self.digest}>"
            # Tracebacks through the generated code show its lines.
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            namespace: dict[str, Any] = {**_GLOBALS, **self.helpers}
            exec(compile(source, filename, "exec"), namespace)
            self._on_bar = namespace["on_bar"]
        return self._on_bar

    # -- batch ----------------------------------------------------------------------------
    def exprs(self) -> list[pl.Expr]:
        """Every feature's polars expression, named, in set order, over bars that carry their
        touch (`batch.touch_at_emit`)."""
        x = BatchInputs(self.components)
        return [f.batch(x).alias(f.name) for f in self.features]


class BatchInputs:
    """What a batch half reads, as polars expressions: the bar's columns under `Bar`'s names,
    the touch, and components' outputs as ``x["macd.signal"]`` (the streaming
    ``macd.signal``)."""

    def __init__(self, components: Sequence[Component]) -> None:
        self._components = {c.name: c for c in components}
        self._outputs: dict[str, Mapping[str, pl.Expr]] = {}

    def __getitem__(self, key: str) -> pl.Expr:
        name, _, attr = key.partition(".")
        outputs = self._outputs.get(name)
        if outputs is None:
            if name not in self._components:
                raise KeyError(f"{key!r}: no component {name!r}")
            c = self._components[name]
            outputs = self._outputs[name] = c.batch(self, **c.params)
        if attr not in outputs:
            raise KeyError(f"{key!r}: component {name!r} has batch outputs {sorted(outputs)}")
        return outputs[attr]

    @property
    def close(self) -> pl.Expr:
        return pl.col("close")

    @property
    def high(self) -> pl.Expr:
        return pl.col("high")

    @property
    def low(self) -> pl.Expr:
        return pl.col("low")

    @property
    def volume(self) -> pl.Expr:
        return pl.col("volume")

    @property
    def notional(self) -> pl.Expr:
        return pl.col("notional")

    @property
    def count(self) -> pl.Expr:
        return pl.col("count")

    @property
    def buy_volume(self) -> pl.Expr:
        return pl.col("buy_volume")

    @property
    def sell_volume(self) -> pl.Expr:
        return pl.col("sell_volume")

    @property
    def empty(self) -> pl.Expr:
        return pl.col("count") == 0

    @property
    def vwap(self) -> pl.Expr:
        """`Bar.vwap`: the close for a bar without volume."""
        volume = self.volume
        return pl.when(volume > 0).then(self.notional / volume).otherwise(self.close)

    @property
    def bid(self) -> pl.Expr:
        return pl.col("bid")

    @property
    def ask(self) -> pl.Expr:
        return pl.col("ask")

    @property
    def bid_size(self) -> pl.Expr:
        return pl.col("bid_size")

    @property
    def ask_size(self) -> pl.Expr:
        return pl.col("ask_size")


class StreamingEngine(SlotState):
    """One instrument's streaming state for a feature set. Subclass it with the set:
    ``class FeatureEngine(StreamingEngine, features=REGISTRY)``."""

    __slots__ = ("_ask", "_ask_size", "_bid", "_bid_size", "_parts")
    features: ClassVar[FeatureSet]
    _part_keys: ClassVar[tuple[str, ...]]
    _state_keys: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, features: FeatureSet | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if features is not None:
            cls.features = features
            cls._part_keys = tuple(f"_{c.name}" for c in features.components)
            cls._state_keys = tuple(sorted([*(f"_{q}" for q in QUOTE), *cls._part_keys]))
            # The entries compiled into one function: the method the base class declares.
            cls.on_bar = features.on_bar()  # type: ignore[method-assign,assignment]

    def __init__(self) -> None:
        self._parts = self.features.build()
        self._bid = self._ask = self._bid_size = self._ask_size = math.nan

    def on_quote(self, bid: float, ask: float, bid_size: float, ask_size: float) -> None:
        self._bid, self._ask, self._bid_size, self._ask_size = bid, ask, bid_size, ask_size

    @property
    def touch(self) -> tuple[float, float] | None:
        """(bid, ask) of the latest quote; None before the first."""
        return None if math.isnan(self._bid) else (self._bid, self._ask)

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        """Updates every component with `bar`; returns the vector (names in set order) once
        every feature is defined, else None. Components update on every bar, warm or not."""
        raise NotImplementedError("subclass with features=<FeatureSet>")  # pragma: no cover

    # Snapshots hold one entry per component, `_<name>`, beside the quote: the layout of a
    # handwritten engine's slots, so they read the same as before the registry.
    def state(self) -> dict[str, Any]:
        parts = dict(zip(self._part_keys, self._parts, strict=True))
        return {k: parts[k].state() if k in parts else getattr(self, k) for k in self._state_keys}

    def load(self, state: Mapping[str, Any]) -> None:
        if set(state) != set(self._state_keys):
            raise ValueError(
                f"{type(self).__name__}: snapshot holds {sorted(state)}, "
                f"expected {list(self._state_keys)}"
            )
        for q in QUOTE:
            setattr(self, f"_{q}", state[f"_{q}"])
        for key, part in zip(self._part_keys, self._parts, strict=True):
            part.load(state[key])
