"""hysteresis.step: fall and rise counts, as tables of rounds -> the whole Check, and a model.

Tables in the style of h11's test_state.py: every row is one round and the whole check it
must leave behind. The property test compares `step` with a second, declarative reading of
the rule (runs of rounds), written without looking at how `step` counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carpd_py.hysteresis import Check, Round, step

G, B, H, N = Round.GOOD, Round.BAD, Round.HARD, Round.NONE

CI = settings(max_examples=200, deadline=None, derandomize=True, database=None)

Table = Sequence[tuple[Round, Check]]


def play(fall: int, rise: int, table: Table, start: Check | None = None) -> Check:
    """Feed each round to `step`; after each one the whole check must be as the row says."""
    check = Check() if start is None else start
    for i, (result, expected) in enumerate(table):
        check = step(check, result, fall, rise)
        assert check == expected, f"after round {i} ({result.name})"
    return check


# --- first verdicts -----------------------------------------------------------------------


def test_no_verdict_at_start() -> None:
    assert Check() == Check(up=None, good=0, bad=0, rounds=0)
    assert not Check().risen


def test_first_verdict_up_after_rise_good_rounds() -> None:
    play(
        3,
        2,
        [
            (G, Check(up=None, good=1, bad=0, rounds=1)),
            (G, Check(up=True, good=2, bad=0, rounds=2)),
            (G, Check(up=True, good=3, bad=0, rounds=3)),
        ],
    )


def test_first_verdict_down_after_fall_bad_rounds() -> None:
    play(
        2,
        3,
        [
            (B, Check(up=None, good=0, bad=1, rounds=1)),
            (B, Check(up=False, good=0, bad=2, rounds=2)),
            (B, Check(up=False, good=0, bad=3, rounds=3)),
        ],
    )


def test_first_verdict_whichever_count_is_met_first() -> None:
    # fall 2, rise 3: G B B -> down at the third round (2 bad in a row before 3 good).
    play(
        2,
        3,
        [
            (G, Check(up=None, good=1, bad=0, rounds=1)),
            (B, Check(up=None, good=0, bad=1, rounds=2)),
            (B, Check(up=False, good=0, bad=2, rounds=3)),
        ],
    )
    # fall 3, rise 2: B G G -> up at the third round.
    play(
        3,
        2,
        [
            (B, Check(up=None, good=0, bad=1, rounds=1)),
            (G, Check(up=None, good=1, bad=0, rounds=2)),
            (G, Check(up=True, good=2, bad=0, rounds=3)),
        ],
    )


def test_alternating_rounds_never_give_a_first_verdict() -> None:
    check = Check()
    for i in range(20):
        check = step(check, G if i % 2 else B, 2, 2)
        assert check.up is None
    assert check.rounds == 20


def test_fall_and_rise_of_one_decide_on_the_first_round() -> None:
    assert step(Check(), G, 1, 1) == Check(up=True, good=1, bad=0, rounds=1)
    assert step(Check(), B, 1, 1) == Check(up=False, good=0, bad=1, rounds=1)


# --- down after fall bad rounds in a row, up after rise good rounds in a row --------------


def test_down_only_after_fall_bad_rounds_in_a_row() -> None:
    up = Check(up=True, good=5, bad=0, rounds=5)
    play(
        3,
        2,
        [
            (B, Check(up=True, good=0, bad=1, rounds=6)),
            (B, Check(up=True, good=0, bad=2, rounds=7)),
            (G, Check(up=True, good=1, bad=0, rounds=8)),  # the run is broken: count again
            (B, Check(up=True, good=0, bad=1, rounds=9)),
            (B, Check(up=True, good=0, bad=2, rounds=10)),
            (B, Check(up=False, good=0, bad=3, rounds=11)),
            (B, Check(up=False, good=0, bad=4, rounds=12)),
        ],
        start=up,
    )


def test_up_only_after_rise_good_rounds_in_a_row() -> None:
    down = Check(up=False, good=0, bad=4, rounds=4)
    play(
        2,
        3,
        [
            (G, Check(up=False, good=1, bad=0, rounds=5)),
            (G, Check(up=False, good=2, bad=0, rounds=6)),
            (B, Check(up=False, good=0, bad=1, rounds=7)),  # one bad round: rise again
            (G, Check(up=False, good=1, bad=0, rounds=8)),
            (G, Check(up=False, good=2, bad=0, rounds=9)),
            (G, Check(up=True, good=3, bad=0, rounds=10)),
        ],
        start=down,
    )


def test_a_bad_round_below_fall_keeps_a_check_up() -> None:
    up = Check(up=True, good=3, bad=0, rounds=3)
    after = step(up, B, 2, 2)
    assert after == Check(up=True, good=0, bad=1, rounds=4)
    assert after.risen


# --- a round that could not be judged changes nothing -------------------------------------


@pytest.mark.parametrize(
    "check",
    [
        Check(),
        Check(up=None, good=1, bad=0, rounds=1),
        Check(up=True, good=0, bad=2, rounds=9),
        Check(up=False, good=2, bad=0, rounds=9),
    ],
)
def test_none_round_changes_nothing(check: Check) -> None:
    assert step(check, N, 3, 3) == check


def test_none_round_does_not_break_a_run() -> None:
    # NONE is no round at all: B N B counts as two bad rounds in a row.
    play(
        2,
        2,
        [
            (B, Check(up=None, good=0, bad=1, rounds=1)),
            (N, Check(up=None, good=0, bad=1, rounds=1)),
            (B, Check(up=False, good=0, bad=2, rounds=2)),
            (G, Check(up=False, good=1, bad=0, rounds=3)),
            (N, Check(up=False, good=1, bad=0, rounds=3)),
            (N, Check(up=False, good=1, bad=0, rounds=3)),
            (G, Check(up=True, good=2, bad=0, rounds=4)),
        ],
    )


# --- a hard round is down at once ---------------------------------------------------------


def test_hard_round_without_a_verdict_is_down_at_once() -> None:
    assert step(Check(), H, 5, 2) == Check(up=False, good=0, bad=5, rounds=1)


def test_hard_round_when_up_is_down_at_once() -> None:
    up = Check(up=True, good=7, bad=0, rounds=7)
    play(
        3,
        2,
        [
            (H, Check(up=False, good=0, bad=3, rounds=8)),
            (B, Check(up=False, good=0, bad=4, rounds=9)),
            (H, Check(up=False, good=0, bad=5, rounds=10)),
            (G, Check(up=False, good=1, bad=0, rounds=11)),
            (G, Check(up=True, good=2, bad=0, rounds=12)),
        ],
        start=up,
    )


def test_hard_round_after_some_bad_rounds_counts_them() -> None:
    # bad = max(bad + 1, fall): a HARD never counts fewer rounds than were seen.
    play(
        2,
        2,
        [
            (B, Check(up=None, good=0, bad=1, rounds=1)),
            (B, Check(up=False, good=0, bad=2, rounds=2)),
            (H, Check(up=False, good=0, bad=3, rounds=3)),
        ],
    )
    play(
        4,
        2,
        [
            (B, Check(up=None, good=0, bad=1, rounds=1)),
            (B, Check(up=None, good=0, bad=2, rounds=2)),
            (B, Check(up=None, good=0, bad=3, rounds=3)),
            (H, Check(up=False, good=0, bad=4, rounds=4)),
        ],
    )


def test_step_does_not_change_its_argument() -> None:
    check = Check(up=True, good=2, bad=0, rounds=2)
    step(check, H, 3, 3)
    assert check == Check(up=True, good=2, bad=0, rounds=2)


# --- property: step agrees with a declarative reading of the rule -------------------------


def _bad(result: Round) -> bool:
    return result in (Round.BAD, Round.HARD)


def reference(results: Sequence[Round], fall: int, rise: int) -> Check:
    """The rule read as runs: drop NONE, cut the rest into runs of good and of bad rounds.

    A good run of at least `rise` says up; a bad run of at least `fall`, or holding a HARD,
    says down; the verdict is what the last such run said. In the last run a HARD counts as
    at least `fall` bad rounds: bad = max(n, fall + rounds after the first HARD).
    """
    judged = [r for r in results if r is not Round.NONE]
    runs = [(bad, list(run)) for bad, run in groupby(judged, key=_bad)]
    up: bool | None = None
    for bad, run in runs:
        if bad and (len(run) >= fall or Round.HARD in run):
            up = False
        elif not bad and len(run) >= rise:
            up = True
    good_now = bad_now = 0
    if runs:
        bad, run = runs[-1]
        if bad:
            bad_now = len(run)
            if Round.HARD in run:
                first = run.index(Round.HARD)
                bad_now = max(len(run), fall + len(run) - 1 - first)
        else:
            good_now = len(run)
    return Check(up=up, good=good_now, bad=bad_now, rounds=len(judged))


rounds_st = st.lists(st.sampled_from([G, G, B, B, H, N]), max_size=40)
counts_st = st.integers(min_value=1, max_value=5)


@CI
@given(results=rounds_st, fall=counts_st, rise=counts_st)
def test_step_matches_the_reference(results: list[Round], fall: int, rise: int) -> None:
    check = Check()
    for i, result in enumerate(results):
        check = step(check, result, fall, rise)
        assert check == reference(results[: i + 1], fall, rise), f"after round {i}"


@CI
@given(results=rounds_st, fall=counts_st, rise=counts_st)
def test_verdict_changes_only_after_enough_rounds(
    results: list[Round], fall: int, rise: int
) -> None:
    """Down only with `fall` bad rounds in a row (or a HARD) just behind; up only with `rise`
    good ones. Once given, a verdict is never taken back to None."""
    check = Check()
    for result in results:
        after = step(check, result, fall, rise)
        if check.up is not None:
            assert after.up is not None
        if after.up is False and check.up is not False:
            assert result is Round.HARD or (result is Round.BAD and after.bad >= fall)
        if after.up is True and check.up is not True:
            assert result is Round.GOOD
            assert after.good == rise
        check = after
