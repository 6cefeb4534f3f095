"""Event ids: unique, sortable in creation order, deterministic when seeded on a SimClock."""

from __future__ import annotations

import pytest

from tickpipe.clock import LiveClock, SimClock
from tickpipe.ids import EventIds, ulid_time_ms

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
T0 = 1_723_161_254_087_891_268


class _StepClock:
    """Returns the given times in turn (may run backwards, as wall clocks sometimes do)."""

    def __init__(self, times_ns: list[int]) -> None:
        self._times = iter(times_ns)

    def now_ns(self) -> int:
        return next(self._times)


def test_event_ids_when_generated_on_live_clock_are_unique_and_sorted() -> None:
    ids = EventIds(LiveClock())

    generated = [ids.new() for _ in range(20_000)]

    assert len(set(generated)) == len(generated)
    assert sorted(generated) == generated


def test_event_ids_when_many_in_same_millisecond_keep_creation_order() -> None:
    ids = EventIds(SimClock(T0), seed=7)

    generated = [ids.new() for _ in range(5_000)]

    assert {ulid_time_ms(i) for i in generated} == {T0 // 1_000_000}
    assert len(set(generated)) == len(generated)
    assert sorted(generated) == generated


def test_event_ids_when_clock_runs_backwards_stay_sorted() -> None:
    times = [T0, T0 + 5_000_000, T0 - 3_000_000_000, T0 + 5_000_000, T0 + 9_000_000]
    ids = EventIds(_StepClock(times), seed=1)

    generated = [ids.new() for _ in times]

    assert sorted(generated) == generated
    assert len(set(generated)) == len(generated)
    assert ulid_time_ms(generated[2]) == (T0 + 5_000_000) // 1_000_000


def test_event_ids_when_seeded_on_sim_clock_repeat_exactly() -> None:
    def run(seed: int) -> list[str]:
        clock = SimClock(T0)
        ids = EventIds(clock, seed=seed)
        out = []
        for step in range(200):
            clock.advance_to(T0 + step * 400_000)  # several ids per ms, then a new ms
            out.append(ids.new())
        return out

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_event_id_when_formatted_has_ulid_layout() -> None:
    event_id = EventIds(SimClock(T0), seed=3).new()

    assert len(event_id) == 26
    assert set(event_id) <= CROCKFORD


@pytest.mark.parametrize("ts_ns", [0, 1_000_000, T0, (2**48 - 1) * 1_000_000])
def test_ulid_time_ms_when_decoding_new_id_returns_clock_millis(ts_ns: int) -> None:
    event_id = EventIds(SimClock(ts_ns), seed=0).new()

    assert ulid_time_ms(event_id) == ts_ns // 1_000_000


def test_ulid_time_ms_when_ids_from_later_ms_sort_after_earlier() -> None:
    clock = SimClock(T0)
    ids = EventIds(clock, seed=0)
    first = ids.new()
    clock.advance_to(T0 + 1_000_000)

    second = ids.new()

    assert ulid_time_ms(second) == ulid_time_ms(first) + 1
    assert second > first


def test_random_part_when_encoded_by_pairs_equals_the_character_loop() -> None:
    import random

    from tickpipe.ids import _encode, _encode_random

    rng = random.Random(7)
    for value in [0, (1 << 80) - 1, *(rng.getrandbits(80) for _ in range(2_000))]:
        assert _encode_random(value) == _encode(value, 16)


def test_ids_within_a_millisecond_count_up_across_the_cached_head() -> None:
    import random

    from tickpipe.ids import _ALPHABET, _encode

    clock = SimClock(T0)
    ids = EventIds(clock, seed=3)
    draws = random.Random(3)
    expected = draws.getrandbits(80)

    def random_part(event_id: str) -> int:
        value = 0
        for ch in event_id[10:]:
            value = value * 32 + _ALPHABET.index(ch)
        return value

    made = [ids.new() for _ in range(3_000)]  # crosses the 1,024-id head at least twice

    assert [random_part(i) for i in made] == list(range(expected, expected + 3_000))
    assert all(i[:10] == _encode(T0 // 1_000_000, 10) for i in made)
    clock.advance_to(T0 + 1_000_000)
    after = ids.new()
    assert after[:10] == _encode(T0 // 1_000_000 + 1, 10)
    assert random_part(after) == draws.getrandbits(80)  # a new millisecond draws afresh
    assert after > made[-1]
