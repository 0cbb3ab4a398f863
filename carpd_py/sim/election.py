"""The carp election between the nodes that share one vhid on one segment, settled at once.

What carp_proto_input_c() does with an advertisement, and what carp_master_down() does when a
backup hears none, applied until nothing changes (sys/netinet/ip_carp.c r1.370):

- Only a MASTER advertises: advbase, advskew, and its demote count (capped at 255).
- A MASTER that hears a master advertising as often or more often (advbase + advskew/256 not
  greater than its own) whose demote count is not higher than its own, or a master with a
  lower demote count, becomes BACKUP.
- A BACKUP takes over (carp_master_down) from a master with a higher demote count whatever
  net.inet.carp.preempt says; from a master that advertises slower and has no better demote
  count only with preempt on; from a master whose interval is above 3 x its own advbase.
- A BACKUP that hears no master declares it down after 3 x its own interval: the one with the
  shortest interval fires first. Real timers race on a tie; here the first node listed wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .state import BACKUP, INIT, MASTER

MAX_ROUNDS = 64


@dataclass
class Contender:
    """One vhost of one node in an election, with what it advertises and how it decides."""

    state: str
    advbase: int
    advskew: int
    demote: int  # carp_group_demote_count(): what it advertises and compares against
    preempt: bool  # net.inet.carp.preempt != 0 on its node

    @property
    def tv(self) -> tuple[int, int]:
        """The advertisement interval as a struct timeval, as the kernel compares it."""
        return (self.advbase, self.advskew * 1000000 // 256)


def react(receiver: Contender, sender: Contender) -> str | None:
    """carp_proto_input_c(): the receiver's new state after one advertisement, or None."""
    mine, theirs = receiver.tv, sender.tv
    if receiver.state == MASTER:
        if (mine >= theirs and sender.demote <= receiver.demote) or (
            sender.demote < receiver.demote
        ):
            return BACKUP
        return None
    if receiver.state == BACKUP:
        if receiver.preempt and mine < theirs and sender.demote >= receiver.demote:
            return MASTER
        if sender.demote > receiver.demote:
            return MASTER
        if receiver.advbase and (receiver.advbase * 3, 0) < theirs:
            return MASTER
    return None


def elect(
    contenders: list[Contender], hears: Callable[[int, int], bool]
) -> list[tuple[int, str, str]]:
    """Settle one election; return the transitions (index, old, new) in the order they happen.

    `hears(r, s)` tells whether contender r receives and accepts contender s's advertisements
    (same segment, links up, net.inet.carp.allow, same password and addresses, ...). The list
    order is the tie-break: on equal intervals the earlier contender becomes MASTER first.
    """
    changes: list[tuple[int, str, str]] = []

    def move(i: int, new: str) -> None:
        changes.append((i, contenders[i].state, new))
        contenders[i].state = new

    n = len(contenders)
    for _ in range(MAX_ROUNDS):
        moved = False
        for s in range(n):
            if contenders[s].state != MASTER:
                continue
            for r in range(n):
                if r == s or contenders[r].state == INIT or not hears(r, s):
                    continue
                new = react(contenders[r], contenders[s])
                if new is not None:
                    move(r, new)
                    moved = True
                    break
            if moved:
                break
        if moved:
            continue
        starving = [
            r
            for r in range(n)
            if contenders[r].state == BACKUP
            and not any(s != r and contenders[s].state == MASTER and hears(r, s) for s in range(n))
        ]
        if not starving:
            break
        first = min(starving, key=lambda r: (contenders[r].tv, r))
        move(first, MASTER)
    return changes
