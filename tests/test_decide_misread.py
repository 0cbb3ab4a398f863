"""Issue 9 item 1: one misread never costs a baseline. Tables in the style of test_decide.py.

* A value that differs from what carpd-py expects (a hand change, or a misread) counts only
  when two consecutive reads agree on it; one read of it is logged at info and ignored, and no
  command touches that vhid meanwhile (a real hand change is not fought for a round).
* A value at or above `demote.advskew` never becomes a baseline (warning, old baseline kept).
* A vhid is taken under management (or refused) only when two consecutive reads show it with
  the same advskew: a vhid seen once and never again leaves no record in the state file.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from carpd_py.decide import (
    Adopt,
    Demote,
    Inputs,
    Manage,
    Memory,
    NotAdopted,
    Refuse,
    Restore,
    SetAdvskew,
    Unconfirmed,
    decide,
)

from .test_decide import ADVSKEW, K01, K02, SYNC, UP, B, G, H, Row, S, maintenance, play, vh


def once(**values: int) -> MappingProxyType[tuple[str, int], int]:
    """`unconfirmed` as the memory holds it: {"carp0_1": 50} -> {("carp0", 1): 50}."""
    out = {}
    for name, value in values.items():
        iface, vhid = name.split("_")
        out[(iface, int(vhid))] = value
    return MappingProxyType(out)


HELD = Memory(
    demoted=True,
    since=1.0,
    reasons=("maintenance",),
    maintenance=True,
    vhids=vh({K01: (0, 240, 240)}),
)


def test_one_read_of_another_value_while_demoted_is_ignored_and_never_adopted() -> None:
    """The issue's case: maintenance on, one read shows 50, the next 240 again."""
    m1 = replace(HELD, unconfirmed=once(carp0_1=50))
    play(
        ADVSKEW,
        {SYNC: (1, 1)},
        [
            Row(2.0, S(G), {K01: 50}, (Unconfirmed(K01, 50, 240),), m1),
            Row(3.0, S(G), {K01: 240}, (), HELD),
            Row(
                20.0,
                S(G),
                {K01: 240},
                (Restore(19.0), SetAdvskew("carp0", {1: 0})),
                Memory(vhids=vh({K01: (0, 0, 0)})),
                action=maintenance(False),
            ),
        ],
        memory=HELD,
    )


def test_two_reads_that_agree_are_a_hand_change_adopted_as_before() -> None:
    m1 = replace(HELD, unconfirmed=once(carp0_1=50))
    m2 = replace(HELD, vhids=vh({K01: (50, 50, 50)}))
    play(
        ADVSKEW,
        {SYNC: (1, 1)},
        [
            Row(2.0, S(G), {K01: 50}, (Unconfirmed(K01, 50, 240),), m1),
            Row(3.0, S(G), {K01: 50}, (Adopt(K01, 0, 50, released=True),), m2),
        ],
        memory=HELD,
    )


def test_two_different_misreads_in_a_row_adopt_nothing() -> None:
    play(
        ADVSKEW,
        {SYNC: (1, 1)},
        [
            Row(
                2.0,
                S(G),
                {K01: 50},
                (Unconfirmed(K01, 50, 240),),
                replace(HELD, unconfirmed=once(carp0_1=50)),
            ),
            Row(
                3.0,
                S(G),
                {K01: 60},
                (Unconfirmed(K01, 60, 240),),
                replace(HELD, unconfirmed=once(carp0_1=60)),
            ),
            Row(4.0, S(G), None, (), replace(HELD, unconfirmed=once(carp0_1=60))),  # no read
            Row(5.0, S(G), {K01: 240}, (), HELD),
        ],
        memory=HELD,
    )


def test_no_command_touches_a_vhid_whose_value_is_unconfirmed() -> None:
    """A real hand change is not fought for the one round it waits for its confirmation."""
    rest = Memory(vhids=vh({K01: (0, 0, 0)}))
    mem, effects = decide(
        ADVSKEW,
        rest,
        Inputs(checks={SYNC: UP}, now=1.0, advskews={K01: 70}),
    )
    assert effects == (Unconfirmed(K01, 70, 0),)
    assert mem.vhids == rest.vhids


def test_a_value_at_or_above_the_demoted_value_never_becomes_a_baseline() -> None:
    """The issue's 254 case: read twice, still not a baseline; left as it is, not fought;
    the old baseline comes back at the restore."""
    m1 = replace(HELD, unconfirmed=once(carp0_1=254))
    m2 = replace(HELD, vhids=vh({K01: (0, 254, 254)}))
    play(
        ADVSKEW,
        {SYNC: (1, 1)},
        [
            Row(2.0, S(G), {K01: 254}, (Unconfirmed(K01, 254, 240),), m1),
            Row(3.0, S(G), {K01: 254}, (NotAdopted(K01, 254, 0),), m2),
            Row(4.0, S(G), {K01: 254}, (), m2),  # said once
            Row(
                20.0,
                S(G),
                {K01: 254},
                (Restore(19.0), SetAdvskew("carp0", {1: 0})),
                Memory(vhids=vh({K01: (0, 0, 0)})),
                action=maintenance(False),
            ),
        ],
        memory=HELD,
    )


def test_the_demoted_value_itself_set_by_hand_is_not_a_baseline() -> None:
    rest = Memory(vhids=vh({K01: (0, 0, 0)}))
    m2 = Memory(vhids=vh({K01: (0, 240, 240)}))
    play(
        ADVSKEW,
        {SYNC: (1, 1)},
        [
            Row(
                1.0,
                S(G),
                {K01: 240},
                (Unconfirmed(K01, 240, 0),),
                replace(rest, unconfirmed=once(carp0_1=240)),
            ),
            Row(2.0, S(G), {K01: 240}, (NotAdopted(K01, 240, 0),), m2),
        ],
        memory=rest,
    )


def test_a_vhid_seen_once_leaves_no_record() -> None:
    """No phantom records: a vhid is managed when two consecutive reads show it alike."""
    m2 = Memory(vhids=vh({K01: (0, 0, 0)}))
    play(
        ADVSKEW,
        {SYNC: (1, 1)},
        [
            Row(
                0.0,
                S(G),
                {K01: 0, K02: 7},
                (Unconfirmed(K01, 0, None), Unconfirmed(K02, 7, None)),
                Memory(unconfirmed=once(carp0_1=0, carp0_2=7)),
            ),
            Row(1.0, S(G), {K01: 0}, (Manage(K01, 0),), m2),
            Row(2.0, S(G), {K01: 0}, (), m2),
        ],
        memory=Memory(),
    )


def test_a_vhid_read_at_the_demoted_value_once_is_not_refused() -> None:
    m2 = Memory(vhids=vh({K02: (0, 0, 0)}))
    play(
        ADVSKEW,
        {SYNC: (1, 1)},
        [
            Row(
                0.0,
                S(G),
                {K02: 250},
                (Unconfirmed(K02, 250, None),),
                Memory(unconfirmed=once(carp0_2=250)),
            ),
            Row(
                1.0,
                S(G),
                {K02: 0},
                (Unconfirmed(K02, 0, None),),
                Memory(unconfirmed=once(carp0_2=0)),
            ),
            Row(2.0, S(G), {K02: 0}, (Manage(K02, 0),), m2),
        ],
        memory=Memory(),
    )


def test_a_new_vhid_while_demoted_is_demoted_once_confirmed() -> None:
    m0 = Memory(demoted=True, since=0.0, reasons=("sync",), unconfirmed=once(carp0_1=0))
    m1 = Memory(demoted=True, since=0.0, reasons=("sync",), vhids=vh({K01: (0, 240, 240)}))
    play(
        ADVSKEW,
        {SYNC: (1, 1)},
        [
            Row(0.0, S(H), {K01: 0}, (Unconfirmed(K01, 0, None), Demote(("sync",))), m0),
            Row(1.0, S(B), {K01: 0}, (Manage(K01, 0), SetAdvskew("carp0", {1: 240})), m1),
        ],
        memory=Memory(),
    )


def test_a_confirmed_refusal_still_refuses() -> None:
    m1 = Memory(refused=frozenset({K02}))
    play(
        ADVSKEW,
        {SYNC: (1, 1)},
        [
            Row(
                0.0,
                S(G),
                {K02: 240},
                (Unconfirmed(K02, 240, None),),
                Memory(unconfirmed=once(carp0_2=240)),
            ),
            Row(1.0, S(G), {K02: 240}, (Refuse(K02, 240),), m1),
            Row(2.0, S(G), {K02: 240}, (), m1),
        ],
        memory=Memory(),
    )


def test_a_demotion_never_lowers_a_value_left_by_hand_at_or_above_the_demoted_value() -> None:
    rest = Memory(vhids=vh({K01: (0, 0, 0)}))
    m1 = Memory(vhids=vh({K01: (0, 250, 250)}))
    m2 = Memory(demoted=True, since=3.0, reasons=("sync",), vhids=vh({K01: (0, 250, 250)}))
    play(
        ADVSKEW,
        {SYNC: (1, 1)},
        [
            Row(
                1.0,
                S(G),
                {K01: 250},
                (Unconfirmed(K01, 250, 0),),
                replace(rest, unconfirmed=once(carp0_1=250)),
            ),
            Row(2.0, S(G), {K01: 250}, (NotAdopted(K01, 250, 0),), m1),
            Row(3.0, S(H), {K01: 250}, (Demote(("sync",)),), m2),  # 240 would promote it
            Row(
                13.0,
                S(G),
                {K01: 250},
                (Restore(10.0), SetAdvskew("carp0", {1: 0})),
                Memory(vhids=vh({K01: (0, 0, 0)})),
            ),
        ],
        memory=rest,
    )
