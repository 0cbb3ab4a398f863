"""What carp_proto_input_c() does with one advertisement (sys/netinet/ip_carp.c r1.370).

- Only a MASTER advertises: advbase, advskew, and its demote count (capped at 255).
- A MASTER that hears a master advertising as often or more often (advbase + advskew/256 not
  greater than its own) whose demote count is not higher than its own, or a master with a
  lower demote count, becomes BACKUP.
- A BACKUP takes over (carp_master_down) from a master with a higher demote count whatever
  net.inet.carp.preempt says; from a master that advertises slower and has no better demote
  count only with preempt on; from a master whose interval is above 3 x its own advbase plus
  its own advskew/256.

When the advertisements are sent and what a BACKUP does when it hears none (the master-down
timer) is the kernel's timers: `kernel.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .state import BACKUP, MASTER


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
        # sc_tv keeps the receiver's own advskew in tv_usec: (3 x advbase, advskew/256)
        if receiver.advbase and (receiver.advbase * 3, mine[1]) < theirs:
            return MASTER
    return None
