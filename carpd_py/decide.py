"""The decision step: pure, like h11's state machine. No trio, no clock, no subprocess.

`decide(policy, memory, inputs)` returns the new memory and the effects to carry out, in order.
The memory it returns already records the commands among the effects as sent; the shell
persists it durably BEFORE it runs any of them, and reports each command that succeeded
through `confirm`. The outcome of one that failed is learned from the next read.

The rule, in one place:

* The node is demoted while any reason holds: `sync`, `upstream:<name>`, `maintenance`.
* It is demoted on the edge where the first reason appears, and restored when no reason
  holds, every check is up (has met its rise count) and `hold_down` seconds have passed since
  the demotion. Nothing is decided until every check has its first verdict.
* Per vhid (method advskew) carpd-py keeps the operator's `baseline`, the `target` it wants on
  the host, and what it last `seen` there. A host value that differs from both `seen` and
  `target` was changed by hand: it becomes the baseline, and if carpd-py was holding that vhid
  demoted it lets go until the next demotion edge. It never fights a hand change.
* One read is never trusted alone (issue 9): a value that differs from what carpd-py expects,
  and a vhid with no record, count only when two consecutive reads agree on them; meanwhile
  (`unconfirmed`) the vhid is left as it is. A value at or above the demoted advskew is never
  adopted as a baseline: it is left as it is (not fought), the old baseline is kept.
* Per group (method carpdemote) carpd-py keeps its own `share` of the counter and changes the
  counter only by that share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from .hysteresis import Check

VhidKey = tuple[str, int]  # (interface, vhid)

MAINTENANCE = "maintenance"


@dataclass(frozen=True)
class Policy:
    """The parts of the config the decision depends on."""

    method: Literal["advskew", "carpdemote"] = "advskew"
    advskew: int = 240
    carpdemote: int = 50
    group: str = "carp"
    hold_down: float = 10.0


@dataclass(frozen=True)
class VhidRecord:
    baseline: int  # the operator's advskew, restored on recovery
    target: int  # what carpd-py wants on the host now
    seen: int | None  # what carpd-py last saw (or set) on the host; None: not seen since boot
    sent: int | None = None  # a value carpd-py commanded whose outcome it has not learned yet


def vhid_map(m: Mapping[VhidKey, VhidRecord] | None = None) -> Mapping[VhidKey, VhidRecord]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class Memory:
    """All that carpd-py must remember, across restarts too (see state.py)."""

    demoted: bool = False
    since: float | None = None  # wall-clock time the demotion was applied
    reasons: tuple[str, ...] = ()  # the reasons in force, sorted
    maintenance: bool = False
    vhids: Mapping[VhidKey, VhidRecord] = field(default_factory=vhid_map)
    refused: frozenset[VhidKey] = frozenset()  # look demoted already, with no record: unmanaged
    share: int = 0  # carpdemote: our share now in the group counter
    share_target: int = 0  # carpdemote: the share we want there
    share_pending: int = 0  # a change of ours whose outcome we have not learned yet
    share_counter_before: int | None = None  # the counter just before that change
    # advskews read once that differ from what carpd-py expects (or of a vhid with no record):
    # they count when the next read agrees. Not persisted: after a restart, read twice again.
    unconfirmed: Mapping[VhidKey, int] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Inputs:
    checks: Mapping[str, Check]  # "sync", "upstream:<name>"
    now: float  # wall-clock seconds: recorded as `since` at a demotion, for the operator
    advskews: Mapping[VhidKey, int] | None  # managed vhids on the host; None: the read failed
    counter: int | None = None  # demote counter of policy.group; None: not read
    # vhids on the host that carpd-py has a record of but no longer manages (a reload changed
    # demote.interfaces): whatever carpd-py still holds there goes back to its baseline.
    others: Mapping[VhidKey, int] = field(default_factory=lambda: MappingProxyType({}))
    # The pair's word (pair.py): reasons not to act on now (both nodes have them, the peer's
    # fault, or the peer's verdict is pending), and "both demoted: go one step deeper".
    withheld: frozenset[str] = frozenset()
    deeper: bool = False
    # Seconds the current demotion has lasted, measured by the shell on the monotonic clock
    # (a wall clock step must not shorten or stretch the hold-down); None: `now - since`.
    demoted_for: float | None = None


# --- effects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Demote:
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Restore:
    after: float  # seconds the node was demoted


@dataclass(frozen=True)
class ReasonsChanged:
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass(frozen=True)
class Adopt:
    """A hand change of an advskew, adopted as the baseline."""

    key: VhidKey
    before: int
    after: int
    released: bool  # carpd-py was holding this vhid demoted and let go


@dataclass(frozen=True)
class Unconfirmed:
    """One read shows an advskew carpd-py does not expect: ignored unless the next agrees."""

    key: VhidKey
    value: int
    expected: int | None  # what carpd-py expected there; None: a vhid it has no record of


@dataclass(frozen=True)
class NotAdopted:
    """A hand change to the demoted advskew or above: left on the host, never a baseline."""

    key: VhidKey
    value: int
    baseline: int  # kept


@dataclass(frozen=True)
class Refuse:
    """A vhid with no record that already looks demoted: left unmanaged."""

    key: VhidKey
    advskew: int


@dataclass(frozen=True)
class Manage:
    """A vhid taken under management, or managed again after the admin fixed it."""

    key: VhidKey
    baseline: int


@dataclass(frozen=True)
class SetAdvskew:
    interface: str
    skews: Mapping[int, int]  # vhid -> advskew


@dataclass(frozen=True)
class CarpDemote:
    group: str
    delta: int


@dataclass(frozen=True)
class ShareAdopted:
    """The group counter holds less than our share: someone took it away; we adopt that."""

    group: str
    before: int
    after: int


Effect = (
    Demote
    | Restore
    | ReasonsChanged
    | Adopt
    | Unconfirmed
    | NotAdopted
    | Refuse
    | Manage
    | SetAdvskew
    | CarpDemote
    | ShareAdopted
)
COMMANDS = (SetAdvskew, CarpDemote)


# --- the rule -----------------------------------------------------------------------------


def reasons_for(checks: Mapping[str, Check], maintenance: bool) -> tuple[str, ...]:
    """The reasons that hold: every check that is down, and maintenance."""
    found = [name for name, c in checks.items() if c.up is False]
    if maintenance:
        found.append(MAINTENANCE)
    return tuple(sorted(found))


def ready(checks: Mapping[str, Check]) -> bool:
    """Every check has its first verdict."""
    return all(c.up is not None for c in checks.values())


def may_restore(policy: Policy, memory: Memory, inputs: Inputs) -> bool:
    """No reason holds and the hold-down has passed. Called only when `ready`: then no
    check down means every check up, i.e. every check has met its rise count."""
    if reasons_for(inputs.checks, memory.maintenance):
        return False
    held = held_for(memory, inputs)
    return held is None or held >= policy.hold_down


def held_for(memory: Memory, inputs: Inputs) -> float | None:
    """Seconds the current demotion has lasted: the shell's monotonic measure if it gave
    one, else the wall clock since `since`; None when not known (restore at once)."""
    if inputs.demoted_for is not None:
        return inputs.demoted_for
    return inputs.now - memory.since if memory.since is not None else None


def decide(policy: Policy, memory: Memory, inputs: Inputs) -> tuple[Memory, tuple[Effect, ...]]:
    effects: list[Effect] = []
    mem = memory
    if policy.method == "advskew" and inputs.advskews is not None:
        mem = _observe_vhids(policy, mem, inputs.advskews, effects)
        mem = _let_go(mem, inputs.others, memory.unconfirmed, effects)
    if policy.method == "carpdemote" and inputs.counter is not None:
        mem = _observe_share(policy, mem, inputs.counter, effects)

    reasons = reasons_for(inputs.checks, mem.maintenance)
    acting = tuple(r for r in reasons if r not in inputs.withheld or r == MAINTENANCE)
    if ready(inputs.checks):
        if not mem.demoted and acting:
            mem = replace(mem, demoted=True, since=inputs.now, reasons=reasons)
            mem = _hold(policy, mem, inputs.others)
            effects.append(Demote(acting))
        elif mem.demoted and may_restore(policy, mem, inputs):
            after = held_for(mem, inputs) or 0.0
            mem = replace(mem, demoted=False, since=None, reasons=())
            mem = release(policy, mem)
            effects.append(Restore(after))
        elif mem.demoted and reasons != mem.reasons:
            effects.append(ReasonsChanged(mem.reasons, reasons))
            mem = replace(mem, reasons=reasons)

    if mem.demoted:
        mem = _depth(policy, mem, inputs.deeper)
    mem, todo = plan(policy, mem, inputs)
    effects.extend(todo)
    return mem, tuple(effects)


def _depth(policy: Policy, mem: Memory, deeper: bool) -> Memory:
    """While demoted: one step below the demoted value when the pair says so (both nodes
    demoted, this one yields), back to the demoted value when not. Only a vhid held at one
    of those two values moves: one let go by hand (target == baseline) or left by hand at
    another value stays as the operator has it."""
    step = 1 if deeper else 0
    if policy.method == "carpdemote":
        want = policy.carpdemote + step if mem.share_target else 0
        return mem if want == mem.share_target else replace(mem, share_target=want)
    vhids = dict(mem.vhids)
    for key, rec in mem.vhids.items():
        base = _demoted(policy, rec.baseline)
        if rec.target != rec.baseline and rec.target in (base, min(254, base + 1)):
            want = min(254, base + step)
            if want not in (rec.target, rec.baseline):
                vhids[key] = replace(rec, target=want)
    return mem if vhids == dict(mem.vhids) else replace(mem, vhids=vhid_map(vhids))


# --- advskew: per-vhid bookkeeping --------------------------------------------------------


def _observe_vhids(
    policy: Policy, mem: Memory, advskews: Mapping[VhidKey, int], effects: list[Effect]
) -> Memory:
    vhids = dict(mem.vhids)
    refused = set(mem.refused)
    pending: dict[VhidKey, int] = {}
    for key, value in advskews.items():
        rec = vhids.get(key)
        if rec is not None and rec.sent is not None:
            # The outcome of our last command is known now: it was applied or it was not.
            rec = replace(rec, seen=value if value == rec.sent else rec.seen, sent=None)
            vhids[key] = rec
        if rec is not None and (
            value in (rec.target, rec.seen) or (rec.seen is None and value == rec.baseline)
        ):
            # In place, or our command has not taken effect yet (it is retried), or the
            # first sight since boot of the baseline (the kernel forgot what we had set).
            if value != rec.seen:
                vhids[key] = replace(rec, seen=value)
            continue
        if rec is None and key in refused and value >= policy.advskew:
            continue  # still refused, as the last read said
        if mem.unconfirmed.get(key) != value:
            # One read is not enough (a misread must never cost a baseline): wait for the next.
            pending[key] = value
            effects.append(Unconfirmed(key, value, rec.target if rec is not None else None))
            continue
        if rec is None:
            if value >= policy.advskew:
                if key not in refused:
                    refused.add(key)
                    effects.append(Refuse(key, value))
                continue
            # A new vhid that appears while the node is demoted is demoted with the others;
            # a refused one that the admin fixed by hand is a hand change: left as set.
            held = mem.demoted and key not in refused
            refused.discard(key)
            target = _demoted(policy, value) if held else value
            vhids[key] = VhidRecord(baseline=value, target=target, seen=value)
            effects.append(Manage(key, value))
            continue
        if rec.seen is None:
            # First sight since boot, of a value that is not the target.
            if value == rec.baseline or value >= policy.advskew:
                # The boot value, or it looks demoted but not by us: reconcile to the target.
                rec = replace(rec, seen=value)
            else:  # hostname.if changed: the boot value is the operator's
                held = rec.target != rec.baseline
                target = _demoted(policy, value) if held else value
                rec = VhidRecord(baseline=value, target=target, seen=value)
                effects.append(Adopt(key, mem.vhids[key].baseline, value, released=False))
        elif value >= policy.advskew:
            # Looks demoted (another daemon, a script, a hand): never a baseline. Not fought
            # either: left as it is until the next edge; the old baseline is kept.
            effects.append(NotAdopted(key, value, rec.baseline))
            rec = replace(rec, target=value, seen=value)
        else:
            held = rec.target != rec.baseline
            effects.append(Adopt(key, rec.baseline, value, released=held))
            rec = VhidRecord(baseline=value, target=value, seen=value)
        if rec != vhids[key]:
            vhids[key] = rec
    return replace(
        mem,
        vhids=vhid_map(vhids),
        refused=frozenset(refused),
        unconfirmed=MappingProxyType(pending),
    )


def _demoted(policy: Policy, baseline: int) -> int:
    """The demoted advskew of a vhid: never lower than its baseline (lower would promote it)."""
    return max(baseline, policy.advskew)


def _hold(policy: Policy, mem: Memory, others: Mapping[VhidKey, int]) -> Memory:
    """At a demotion edge: want the demoted value on every managed vhid, or our share.
    Every record is managed except those read as no longer managed (`others`): a managed
    vhid missing from this read is demoted too, when it shows up again."""
    if policy.method == "carpdemote":
        return replace(mem, share_target=policy.carpdemote)
    # max with the target: a value left by hand at or above the demoted one (NotAdopted)
    # stays; a lower one would promote the vhid.
    vhids = {
        key: rec
        if key in others
        else replace(rec, target=max(_demoted(policy, rec.baseline), rec.target))
        for key, rec in mem.vhids.items()
    }
    return replace(mem, vhids=vhid_map(vhids))


def _let_go(
    mem: Memory,
    others: Mapping[VhidKey, int],
    before: Mapping[VhidKey, int],
    effects: list[Effect],
) -> Memory:
    """Records no longer managed: what carpd-py still holds there goes back to its baseline;
    once it is there, or once the operator has set something else by hand (two reads agree),
    forget it."""
    if not others:
        return mem
    vhids = dict(mem.vhids)
    pending = dict(mem.unconfirmed)
    for key, value in others.items():
        rec = vhids.get(key)
        if rec is None:
            continue
        if value not in (rec.baseline, rec.seen, rec.sent, rec.target) and before.get(key) != value:
            pending[key] = value
            effects.append(Unconfirmed(key, value, rec.target))
            continue
        if value == rec.baseline or value not in (rec.seen, rec.sent, rec.target):
            del vhids[key]  # back at its baseline, or the operator's now
        elif rec.target != rec.baseline:
            vhids[key] = replace(rec, target=rec.baseline, sent=None)
    return replace(mem, vhids=vhid_map(vhids), unconfirmed=MappingProxyType(pending))


def release(policy: Policy, mem: Memory) -> Memory:
    """At a restore edge: want every baseline back, or our share gone."""
    if policy.method == "carpdemote":
        return replace(mem, share_target=0)
    vhids = {key: replace(rec, target=rec.baseline) for key, rec in mem.vhids.items()}
    return replace(mem, vhids=vhid_map(vhids))


# --- carpdemote: our share of the group counter -------------------------------------------


def _observe_share(policy: Policy, mem: Memory, counter: int, effects: list[Effect]) -> Memory:
    if mem.share_pending:
        # A change of ours whose outcome we did not learn (timeout, crash): the counter tells.
        # The kernel may have moved the counter too (by 1, or 32 for a bulk update): take the
        # explanation that leaves the smaller part unexplained.
        moved = counter - (mem.share_counter_before or 0)
        rest = moved - mem.share_pending
        if _kernel_like(rest) != _kernel_like(moved):
            applied = _kernel_like(rest)
        else:
            applied = abs(rest) <= abs(moved)
        share = mem.share + mem.share_pending if applied else mem.share
        mem = replace(mem, share=share, share_pending=0, share_counter_before=None)
    if counter < mem.share:
        # Someone took our share away (an operator; a reboot is handled by after_reboot).
        # How much of what is left is the kernel's cannot be known, so none of it is taken
        # for ours: carpd-py never touches the kernel's part. Released until the next edge.
        effects.append(ShareAdopted(policy.group, mem.share, counter))
        mem = replace(mem, share=0, share_target=0)
    return mem


def _kernel_like(delta: int) -> bool:
    """A change of the counter the kernel itself makes: +-1 per carpdev/syncdev link or send
    error event, +-32 for a pfsync bulk update, and sums of a few of those."""
    return abs(delta) % 32 <= 3 or abs(delta) % 32 >= 29


def commands(policy: Policy, mem: Memory, inputs: Inputs) -> list[Effect]:
    """The commands that bring the host to what memory wants, one per interface."""
    out: list[Effect] = []
    if policy.method == "advskew":
        if inputs.advskews is None:
            return out
        per_iface: dict[str, dict[int, int]] = {}
        for key, rec in mem.vhids.items():
            value = inputs.advskews.get(key, inputs.others.get(key))
            if value is not None and value != rec.target and key not in mem.unconfirmed:
                per_iface.setdefault(key[0], {})[key[1]] = rec.target
        out.extend(SetAdvskew(iface, MappingProxyType(skews)) for iface, skews in per_iface.items())
    elif inputs.counter is not None and mem.share != mem.share_target and not mem.share_pending:
        out.append(CarpDemote(policy.group, mem.share_target - mem.share))
    return out


def plan(policy: Policy, mem: Memory, inputs: Inputs) -> tuple[Memory, list[Effect]]:
    """The commands to run, and the memory that records them as sent. The shell persists
    that memory before it runs them, so their outcome can be learned from the host even if a
    command times out or carpd-py dies half-way."""
    todo = commands(policy, mem, inputs)
    for effect in todo:
        if isinstance(effect, CarpDemote):
            mem = replace(mem, share_pending=effect.delta, share_counter_before=inputs.counter)
        elif isinstance(effect, SetAdvskew):
            vhids = dict(mem.vhids)
            for vhid, skew in effect.skews.items():
                key = (effect.interface, vhid)
                vhids[key] = replace(vhids[key], sent=skew)
            mem = replace(mem, vhids=vhid_map(vhids))
    return mem, todo


def confirm(mem: Memory, effect: Effect) -> Memory:
    """A command succeeded: the host now holds what it set."""
    if isinstance(effect, SetAdvskew):
        vhids = dict(mem.vhids)
        for vhid, skew in effect.skews.items():
            key = (effect.interface, vhid)
            if key in vhids:
                vhids[key] = replace(vhids[key], seen=skew, sent=None)
        return replace(mem, vhids=vhid_map(vhids))
    if isinstance(effect, CarpDemote):
        return replace(
            mem, share=mem.share + effect.delta, share_pending=0, share_counter_before=None
        )
    return mem


def restored(before: Memory, after: Memory) -> tuple[VhidKey, ...]:
    """The vhids a restore edge gives back: held demoted before, wanted at baseline after."""
    return tuple(
        sorted(
            key
            for key, rec in after.vhids.items()
            if rec.target == rec.baseline
            and key in before.vhids
            and before.vhids[key].target != before.vhids[key].baseline
        )
    )


def set_maintenance(mem: Memory, on: bool) -> Memory:
    return replace(mem, maintenance=on)


def stand_down(policy: Policy, mem: Memory) -> Memory:
    """restore_on_exit: give up the demotion now, hold-down or not."""
    return release(policy, replace(mem, demoted=False, since=None, reasons=()))


def resume(mem: Memory, now: float) -> tuple[Memory, float | None]:
    """At a start: the memory from the state file, and the seconds its demotion has lasted
    (None when not demoted), at wall-clock `now`. A stored time in the future, not finite or
    negative cannot be right (a clock that was wrong, a file edited by hand): it counts as
    now, so the whole hold-down runs again. Never sooner than wanted, never forever."""
    if not mem.demoted:
        return mem, None
    since = mem.since
    if since is None or not math.isfinite(since) or since < 0 or since > now:
        return replace(mem, since=now), 0.0
    return mem, now - since


def after_reboot(mem: Memory) -> Memory:
    """The kernel was restarted: nothing we set is there any more, and the counters are new.

    Baselines and maintenance survive; every vhid must be seen again; our share is gone.
    """
    vhids = {
        key: VhidRecord(baseline=rec.baseline, target=rec.baseline, seen=None)
        for key, rec in mem.vhids.items()
    }
    return Memory(maintenance=mem.maintenance, vhids=vhid_map(vhids))
