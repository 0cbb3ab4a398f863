"""The pair rule: pure. My view and the peer's last view (and whether it is fresh) in, a
decision out. No trio, no clock, no socket: the channel (`peer.py`) and the glue
(`pairing.py`) feed it.

What it decides, per reason this node has (a check that is down):

* no fresh peer (none configured, dead, unreachable, bad key): ACT, exactly as alone;
* the peer does not run that check: ACT (it cannot say it is as sick);
* SYNC, attributable to one side (`local`: what that node read shows its own syncdev without
  carrier or its pfsync down), while the peer's check is failing now: mine and not the
  peer's -> ACT; the peer's and not mine -> the failure is THEIRS (my `sync.peer` probe fails
  because of it): withheld;
* the peer's same check is down too: SHARED, withheld: a failover would not help;
* the peer's same check is failing but not down yet: WAIT for its verdict;
* the peer's view was made before it could have seen my fault (`acked` says it was made
  after hearing my first failing round): WAIT for it (a fault both see at once, like the
  direct SYNC cable, reaches the two reads up to an interval apart);
* the peer's check is good, but only since fewer than `rise + SLACK` rounds: WAIT (a fault
  both had may be ending, and my read may lag its); bounded by the peer's good rounds;
* otherwise (the peer is fine there): ACT.

Every WAIT is bounded by my own bad-round count, the clock of this rule: once my check has
been bad for `fall + peer's fall + SLACK` rounds, I act. Maintenance is never withheld (the
operator's word); the decision says when the peer is no healthier, for a warning.

Keeping the VIPs together: when both nodes are demoted (both sick, both in maintenance, or
both stepped down at once), their advskews are equal (max(baseline, advskew)) and carp does
not preempt on a tie, so a split would stay. Then exactly one side, the `yielder`, goes one
step deeper: the side with fewer MASTER vhids, the larger session id on a tie. carp's
preemption then pulls every vhid to the other side. See docs/DESIGN.md for the argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from .decide import MAINTENANCE

SYNC = "sync"
SLACK = 2  # rounds beyond the peer's fall that a wait may last: one for the message, one spare

VhidKey = tuple[str, int]


class Verdict(Enum):
    ACT = "act"  # demote for it (as alone)
    SHARED = "shared"  # both nodes have it: withheld
    THEIRS = "theirs"  # the peer's own fault shows here too: withheld
    WAIT = "wait"  # the peer's verdict is pending: not acted on yet


@dataclass(frozen=True)
class CheckState:
    up: bool | None = None
    bad: int = 0  # bad rounds in a row
    fall: int = 3
    local: bool = False  # the failure is this node's own (its SYNC link read down)
    good: int = 0  # good rounds in a row
    rise: int = 3


@dataclass(frozen=True)
class Role:
    state: str  # "MASTER", "BACKUP", "INIT"
    advskew: int
    managed: bool = True


def _empty() -> Mapping[str, CheckState]:
    return MappingProxyType({})


def _no_roles() -> Mapping[VhidKey, Role]:
    return MappingProxyType({})


@dataclass(frozen=True)
class NodeView:
    """What one node says about itself."""

    session: str = ""
    checks: Mapping[str, CheckState] = field(default_factory=_empty)
    maintenance: bool = False
    demoted: bool = False
    roles: Mapping[VhidKey, Role] = field(default_factory=_no_roles)

    @property
    def reasons(self) -> tuple[str, ...]:
        found = [n for n, c in self.checks.items() if c.up is False]
        return tuple(sorted([*found, MAINTENANCE] if self.maintenance else found))

    def masters(self) -> frozenset[int]:
        """The vhids of managed carp interfaces this node is MASTER of."""
        return frozenset(k[1] for k, r in self.roles.items() if r.managed and r.state == "MASTER")


@dataclass(frozen=True)
class Peer:
    view: NodeView
    fresh: bool  # a valid message within [peer] timeout
    acked: frozenset[str] = frozenset()  # my checks whose failure the peer's view has heard of


@dataclass(frozen=True)
class PairDecision:
    verdicts: Mapping[str, Verdict] = field(default_factory=lambda: MappingProxyType({}))
    deeper: bool = False  # both demoted and this side yields: one step below the other
    split_brain: tuple[int, ...] = ()  # vhids MASTER on both nodes
    split: bool = False  # some managed vhids MASTER here, others there
    no_healthier: bool = False  # maintenance demotes while the peer is no healthier

    @property
    def withheld(self) -> frozenset[str]:
        """The reasons decide() must not act on now."""
        return frozenset(r for r, v in self.verdicts.items() if v is not Verdict.ACT)

    def held(self, *kinds: Verdict) -> tuple[str, ...]:
        return tuple(sorted(r for r, v in self.verdicts.items() if v in kinds))


ALONE = PairDecision()


def judge(name: str, me: CheckState, them: CheckState | None, acked: bool) -> Verdict:
    """One reason of mine (my check `name` is down) against the peer's same check."""
    if them is None:
        return Verdict.ACT
    # Attribution needs the peer's check failing now (bad rounds): a peer check that is down
    # but recovering (its link reads up again, waiting for its rise rounds) says nothing
    # about whose fault it was, and my own read may be up to an interval older than its.
    if name == SYNC and them.bad > 0 and me.local != them.local:
        return Verdict.ACT if me.local else Verdict.THEIRS
    if them.up is False:
        return Verdict.SHARED
    within = me.bad < me.fall + them.fall + SLACK
    if them.bad > 0 or not acked:
        return Verdict.WAIT if within else Verdict.ACT
    if them.good < them.rise + SLACK:
        # The peer's check is good since a moment only: the fault we shared may be ending,
        # and my last read can be older than its (the lab's cable plugged back in). Wait
        # until it has been good for SLACK rounds past its rise: that bounds the wait.
        return Verdict.WAIT
    return Verdict.ACT


def yields(mine: NodeView, theirs: NodeView) -> bool:
    """Of two demoted nodes, does `mine` step one further down? Antisymmetric for distinct
    sessions: exactly one of yields(a, b), yields(b, a) holds."""
    m, t = len(mine.masters()), len(theirs.masters())
    if m != t:
        return m < t
    return mine.session > theirs.session


def split_of(mine: NodeView, theirs: NodeView) -> tuple[tuple[int, ...], bool]:
    """(vhids MASTER on both, whether the managed VIPs are split between the nodes)."""
    here = {k[1] for k, r in mine.roles.items() if r.state == "MASTER"}
    there = {k[1] for k, r in theirs.roles.items() if r.state == "MASTER"}
    managed = {k[1] for k, r in mine.roles.items() if r.managed}
    both = tuple(sorted(here & there))
    split = bool((here - there) & managed) and bool((there - here) & managed)
    return both, split


def decide_pair(mine: NodeView, peer: Peer | None) -> PairDecision:
    """The pair's word on my reasons; without a fresh peer, ALONE (nothing withheld)."""
    if peer is None or not peer.fresh:
        return ALONE
    theirs = peer.view
    verdicts = {
        name: judge(name, check, theirs.checks.get(name), name in peer.acked)
        for name, check in mine.checks.items()
        if check.up is False
    }
    both, split = split_of(mine, theirs)
    deeper = mine.demoted and theirs.demoted and yields(mine, theirs)
    no_healthier = mine.maintenance and bool(theirs.reasons)
    return PairDecision(
        verdicts=MappingProxyType(verdicts),
        deeper=deeper,
        split_brain=both,
        split=split,
        no_healthier=no_healthier,
    )
