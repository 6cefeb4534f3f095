"""Service specs: every installed service described once, built without the environment;
snapshot versions migrated or refused; start-up work before the first record."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from opentelemetry.trace import NoOpTracer

from tests.unit import factories as f
from tickpipe.app import load_specs, run_service, service_names
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.embedded import simulated_context
from tickpipe.ids import EventIds
from tickpipe.messages import Event, TradeTick
from tickpipe.runner import StreamRunner, encode_emit
from tickpipe.service import (
    Emit,
    ServiceContext,
    ServiceSpec,
    SettingsError,
    SnapshotFormat,
    SnapshotVersionError,
)
from tickpipe.state import Snapshot, SnapshotStore
from tickpipe.topics import CONTROL, DLQ, TOPICS

# One changed setting per shipped service; a service installed later is built with defaults.
OVERLAYS: dict[str, dict[str, Any]] = {
    "ingest": {"source": "generator", "symbol_count": 2, "limit": 5},
    "feature": {"bar_seconds": 5},
    "inference": {"long_threshold": 0.6},
    "risk": {"capital": 50_000, "max_daily_loss": "none"},
    "execution": {"taker_fee_bps": 1},
}


def test_specs_when_loaded_match_their_entry_points_in_pipeline_order() -> None:
    specs = load_specs()
    assert sorted(specs) == service_names()
    assert {"ingest", "feature", "inference", "risk", "execution"} <= set(specs)
    orders = [s.order for s in specs.values()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    assert next(iter(specs.values())).is_source  # sources first


def test_specs_when_wired_every_input_is_some_service_output_and_topics_exist() -> None:
    specs = load_specs().values()
    known = {t.name for t in TOPICS}
    produced = {t for s in specs for t in s.outputs}
    for spec in specs:
        assert set(spec.inputs) <= known and set(spec.outputs) <= known, spec.name
        assert DLQ in spec.outputs, f"{spec.name} dead-letters bad input"
        # control.v1 also comes from operators (API, CLI); every other input from a service.
        assert set(spec.inputs) - {CONTROL} <= produced, spec.name


@pytest.mark.parametrize("name", sorted(load_specs()))
def test_spec_when_built_with_defaults_and_an_overlay_never_reads_the_environment(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_specs()[name]
    overlay = OVERLAYS.get(name, {})
    # A variable that would change the settings if the environment were read.
    for field in overlay or list(spec.settings.model_fields)[:1]:
        monkeypatch.setenv(f"TICKPIPE_{name.upper()}_{field.upper()}", "not-a-valid-value")
    environ = dict(os.environ)

    defaults = spec.settings_from()
    changed = spec.settings_from(overlay)

    assert type(defaults) is spec.settings and type(changed) is spec.settings
    assert defaults.model_config.get("frozen") is True
    for field, value in overlay.items():
        got = getattr(changed, field)
        assert got != getattr(defaults, field) or value == "none", field
    for settings in (defaults, changed):
        built = spec.build(simulated_context(), settings)
        assert built is not None
    assert dict(os.environ) == environ, "building a service changed the environment"
    monkeypatch.undo()
    assert defaults == spec.settings()  # what a process gets with no variables set


def test_spec_when_overlay_names_an_unknown_setting_or_a_bad_value_says_so() -> None:
    risk = load_specs()["risk"]
    with pytest.raises(SettingsError, match=r"unknown setting\(s\) \['capitol'\]"):
        risk.settings_from({"capitol": 1})
    with pytest.raises(SettingsError, match=r"\[risk\]: capital: "):
        risk.settings_from({"capital": "abc"})


def test_run_service_when_environment_holds_a_bad_setting_exits_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKPIPE_RISK_CAPITAL", "abc")
    with pytest.raises(SystemExit, match=r"risk: invalid settings: risk: capital: "):
        run_service("risk")


# -- snapshots ----------------------------------------------------------------------------


class _Counter:
    """Counts trades; its snapshot format is `{"n": ...}` (v2) or a bare count (v1)."""

    def __init__(self) -> None:
        self.n = 0
        self.started: list[int] = []
        self.stopped = False

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        self.n += 1
        return ()

    def snapshot(self) -> bytes:
        return orjson.dumps({"n": self.n})

    def restore(self, data: bytes) -> None:
        self.n = orjson.loads(data)["n"]

    def on_start(self, ctx: ServiceContext) -> Sequence[Emit]:
        self.started.append(self.n)  # after the restore, before any record
        return (Emit("test.out.v1", f.trade(trade_id="hello")),)

    def on_stop(self) -> None:
        self.stopped = True


def _runner(
    bus: MemoryBus, cache: MemoryCache, handler: _Counter, fmt: SnapshotFormat
) -> StreamRunner:
    clock = SimClock(f.T0)
    ids = EventIds(clock, seed=1)
    return StreamRunner(
        service="counter",
        group="counter",
        handler=handler,
        link=bus.link(group="counter", topics=["test.in.v1"], client_id="counter-1"),
        clock=clock,
        ids=ids,
        tracer=NoOpTracer(),
        snapshots=SnapshotStore(cache, "snapshot:counter"),
        snapshot_format=fmt,
        snapshot_interval_s=0.0,
    )


def _old_snapshot(cache: MemoryCache, version: int, state: bytes) -> None:
    SnapshotStore(cache, "snapshot:counter").save(Snapshot({}, state, version))


def test_snapshot_when_older_version_has_a_migration_is_migrated_on_restore() -> None:
    bus, cache = MemoryBus(), MemoryCache(SimClock(f.T0))
    _old_snapshot(cache, 1, b"41")
    fmt = SnapshotFormat(version=2, migrations={1: lambda b: orjson.dumps({"n": int(b)})})

    handler = _Counter()
    _runner(bus, cache, handler, fmt)

    assert handler.n == 41


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (1, r"counter: the stored snapshot has version 1 and this build reads version 3, "
         r"with no migration from version 2"),
        (4, r"counter: the stored snapshot has version 4, newer than this build's 3"),
    ],
)  # fmt: skip
def test_snapshot_when_version_cannot_be_read_is_refused_naming_the_versions(
    stored: int, message: str
) -> None:
    bus, cache = MemoryBus(), MemoryCache(SimClock(f.T0))
    _old_snapshot(cache, stored, b"{}")
    fmt = SnapshotFormat(version=3, migrations={1: lambda b: b})  # none from 2

    with pytest.raises(SnapshotVersionError, match=message):
        _runner(bus, cache, _Counter(), fmt)


def test_snapshot_when_saved_records_the_format_version() -> None:
    bus, cache = MemoryBus(), MemoryCache(SimClock(f.T0))
    runner = _runner(bus, cache, _Counter(), SnapshotFormat(version=7))
    bus.producer("t").send(encode_emit(Emit("test.in.v1", f.trade()), ()))

    runner.step(0.0)

    saved = SnapshotStore(cache, "snapshot:counter").load()
    assert saved is not None and saved.version == 7
    assert orjson.loads(saved.state) == {"n": 1}


def test_snapshot_when_stored_before_versions_existed_reads_as_version_one() -> None:
    cache = MemoryCache(SimClock(f.T0))
    cache.set("snapshot:counter", orjson.dumps({"offsets": [], "state": "e30="}))
    loaded = SnapshotStore(cache, "snapshot:counter").load()
    assert loaded is not None and loaded.version == 1


# -- lifecycle ----------------------------------------------------------------------------


def test_runner_when_started_runs_on_start_after_restore_and_publishes_its_events() -> None:
    bus, cache = MemoryBus(), MemoryCache(SimClock(f.T0))
    _old_snapshot(cache, 1, orjson.dumps({"n": 5}))
    handler = _Counter()
    runner = _runner(bus, cache, handler, SnapshotFormat())

    published = runner.start(simulated_context())
    runner.close()

    assert handler.started == [5]
    assert published == 1
    (record,) = bus.records("test.out.v1")
    assert isinstance(_decoded(record.value), TradeTick)
    assert handler.stopped


def _decoded(value: bytes) -> Event:
    from tickpipe.messages import decode

    return decode(value, "trade")


def test_spec_when_built_from_the_environment_reads_its_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec: ServiceSpec[Any] = load_specs()["feature"]
    monkeypatch.setenv("TICKPIPE_FEATURE_BAR_SECONDS", "60")
    assert spec.settings_from_env().bar_seconds == 60
    assert spec.settings_from().bar_seconds == 1
