"""Fall and rise counts: how a series of rounds becomes a verdict. Pure.

A check has no verdict until it has seen `fall` bad rounds or `rise` good rounds in a row,
whichever comes first. Then it goes down after `fall` bad rounds in a row and comes back up
after `rise` good rounds in a row. A round that could not be judged (the host read failed)
leaves it as it is. A hard failure (what was read says the link is down) sets it down at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Round(Enum):
    GOOD = "good"
    BAD = "bad"
    HARD = "hard"  # a bad round that needs no confirmation: the SYNC link is down
    NONE = "none"  # no round: nothing could be judged


@dataclass(frozen=True)
class Check:
    up: bool | None = None  # the verdict; None until the first one
    good: int = 0  # good rounds in a row
    bad: int = 0  # bad rounds in a row
    rounds: int = 0  # rounds judged, good or bad

    @property
    def risen(self) -> bool:
        return self.up is True


def step(check: Check, result: Round, fall: int, rise: int) -> Check:
    """The check after one more round."""
    if result is Round.NONE:
        return check
    # Check(...) rather than dataclasses.replace: this runs for every check every round
    if result is Round.GOOD:
        good = check.good + 1
        up = True if check.up is not True and good >= rise else check.up
        return Check(up, good, 0, check.rounds + 1)
    bad = check.bad + 1
    if result is Round.HARD:
        bad = max(bad, fall)
    up = False if check.up is not False and bad >= fall else check.up
    return Check(up, 0, bad, check.rounds + 1)
