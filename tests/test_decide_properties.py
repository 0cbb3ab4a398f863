"""Property tests: decide() driving a tiny simulated host over generated rounds.

The simulated host applies the commands decide() returns; each command may succeed (applied
and confirmed), fail (not applied) or time out (applied, never confirmed). Reads fail now and
then, or miss a vhid; the operator changes advskews and the demote counter by hand; the kernel
adds and takes its own +1 on the counter; maintenance goes on and off. The checks are fed
through hysteresis.step like the supervisor does.

Invariants (the letters of the brief):

(a) a Restore only when hold_down has passed since the Demote and every check is up (and no
    maintenance); while demoted every command demotes (max(baseline, 240), +share), never
    back to a baseline, and never lowers an advskew (a lower one would promote).
(b) Demotes <= down edges of the checks + maintenance switched on; and <= the number of runs
    of bad rounds long enough to count (>= fall, or holding a HARD): fall/rise bound them.
    With fall >= 2 and no HARD, bad rounds that never come two in a row never demote.
(c) healthy long enough (checks good for rise rounds, time past hold_down, commands working):
    every vhid at its baseline, which is the operator's value, and our share 0.
(d) a hand change is never reverted: until the next Demote edge no command touches a vhid
    changed by hand (so none sets it back to its value before the change), and no share is
    added back after the operator took ours away.
(e) a baseline is always the operator's value: carpd-py's own commands never become one.
    A hand change counts when two consecutive reads show it (issue 9): until then the old
    baseline stands and no command touches that vhid.
(g) after a round that went well (read and every command succeeded) every managed vhid shows
    its target, which is the demoted value (never below the baseline) while demoted and not
    let go by hand, else the baseline; and our share is what we want, 0 or ours.

The generator leaves out what no program could tell apart: a hand change to a value carpd-py
set, sent, last saw or would set at the next edge, and the operator zeroing the counter while
one of our changes has an unknown outcome. Vhids missing from the read at any round, also at
a demotion edge (a bug these tests found, fixed), are in: `ADVSKEW_BUG` is that case, kept as
an explicit example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import groupby
from typing import Literal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from carpd_py.decide import (
    COMMANDS,
    Adopt,
    CarpDemote,
    Demote,
    Effect,
    Inputs,
    Manage,
    Memory,
    Policy,
    Restore,
    SetAdvskew,
    ShareAdopted,
    VhidKey,
    VhidRecord,
    confirm,
    decide,
    set_maintenance,
)
from carpd_py.hysteresis import Check, Round, step

G, B, H, N = Round.GOOD, Round.BAD, Round.HARD, Round.NONE

CI = settings(max_examples=200, deadline=None, derandomize=True, database=None)

Method = Literal["advskew", "carpdemote"]
Outcome = Literal["ok", "fail", "timeout"]
OperatorCounter = Literal["", "zero", "add"]

CHECK_NAMES = ("sync", "upstream:a", "upstream:b")
ALL_KEYS: tuple[VhidKey, ...] = (
    ("carp0", 1),
    ("carp0", 2),
    ("carp0", 3),
    ("carp1", 1),
    ("carp1", 7),
)
K01: VhidKey = ("carp0", 1)
OPERATOR_ADD = 3  # what `add` puts in the counter: the operator's own demotion
OPERATOR_CAP = 6  # at most this much of it, so it never looks like our share (50)
KERNEL_CAP = 2  # two interfaces with carp on them can be down


@dataclass(frozen=True)
class Spec:
    """One round: what happens before it (operator, kernel), its probe results, the read,
    and how each command it produces fares."""

    results: tuple[Round, ...]  # one per check
    dt: float = 1.0
    read_ok: bool = True
    outcomes: tuple[Outcome, ...] = ()  # per command, in order; "ok" past the end
    hand: tuple[int, int] | None = None  # (index of the vhid, advskew set by hand)
    absent: tuple[int, ...] = ()  # indexes of vhids missing from the read (carpN not there)
    maintenance: bool | None = None  # carpctl maintenance on/off before the round
    kernel: int = 0  # the kernel's own change of the counter: -1, 0, +1
    operator: OperatorCounter = ""  # "zero": carpdemote -all by hand; "add": +3 by hand


@dataclass(frozen=True)
class Scenario:
    method: Method
    hold_down: float
    checks: tuple[tuple[str, int, int], ...]  # (name, fall, rise)
    host: tuple[tuple[VhidKey, int], ...]  # the vhids and their advskews at the start
    rounds: tuple[Spec, ...]


class Sim:
    """The host, the operator, the kernel and the shell around decide(), with the oracles."""

    def __init__(self, sc: Scenario) -> None:
        self.policy = Policy(method=sc.method, hold_down=sc.hold_down)
        self.cfg = {name: (fall, rise) for name, fall, rise in sc.checks}
        self.checks = {name: Check() for name in self.cfg}
        self.history: dict[str, list[Round]] = {name: [] for name in self.cfg}
        self.mem = Memory()
        self.now = 0.0
        # the host
        self.keys = [k for k, _ in sc.host]
        self.host = dict(sc.host)
        self.kernel = 0  # the kernel's part of the counter
        self.ours = 0  # carpd-py's part, as really applied
        self.op = 0  # the operator's own part
        # the oracles' bookkeeping
        self.operator_value = dict(sc.host)  # the operator's last value of each vhid
        self.writer = dict.fromkeys(self.keys, "operator")
        self.touched: set[VhidKey] = set()  # changed by hand since the last Demote edge
        self.let_go: set[VhidKey] = set()  # adopted while demoted: released till the next edge
        self.share_let_go = False  # our share adopted away while demoted
        self.forbidden: dict[VhidKey, set[int]] = {k: set() for k in self.keys}
        self.share_taken = False  # the operator took our share away since the last Demote
        self.unresolved = False  # a command timed out and no read has happened since
        self.refused_before: frozenset[VhidKey] = frozenset()
        self.demoted_at: float | None = None
        self.demotes = 0
        self.restores = 0
        self.down_edges = 0
        self.maintenance_edges = 0

    @property
    def counter(self) -> int:
        return self.kernel + self.ours + self.op

    # --- between rounds: operator and kernel ----------------------------------------------

    def hand_change(self, index: int, value: int) -> None:
        key = self.keys[index % len(self.keys)]
        if value == self.host[key]:
            return
        rec = self.mem.vhids.get(key)
        if rec is not None:
            # Indistinguishable from carpd-py's own doing: what it wants, sent or last saw,
            # or the demoted value, which a demotion edge may make the target before a read.
            demoted = max(rec.baseline, self.policy.advskew)
            if value in (rec.target, rec.seen, rec.sent, demoted):
                return
            if value >= self.policy.advskew:
                return  # never a baseline (issue 9): test_decide_misread.py has that case
        elif self.mem.demoted and key not in self.mem.refused:
            return  # never read yet: a new vhid to carpd-py, demoted with the others
        self.forbidden[key] = (self.forbidden[key] | {self.host[key]}) - {value}
        self.host[key] = value
        self.operator_value[key] = value
        self.writer[key] = "operator"
        self.touched.add(key)

    def counter_changes(self, spec: Spec) -> None:
        if spec.kernel:
            self.kernel = min(KERNEL_CAP, max(0, self.kernel + spec.kernel))
        # Zeroing while our change has an unknown outcome: the counter cannot tell whether
        # ours had applied (it reads as "not applied", and is sent again). Left out.
        if spec.operator == "zero" and not self.unresolved:
            if self.ours > 0:
                self.share_taken = True
            self.kernel = self.ours = self.op = 0
        elif spec.operator == "add" and self.op < OPERATOR_CAP:
            self.op += OPERATOR_ADD

    # --- one round ------------------------------------------------------------------------

    def play(self, spec: Spec) -> tuple[Effect, ...]:
        if spec.maintenance is not None:
            if spec.maintenance and not self.mem.maintenance:
                self.maintenance_edges += 1
            self.mem = set_maintenance(self.mem, spec.maintenance)
        if spec.hand is not None and self.policy.method == "advskew":
            self.hand_change(*spec.hand)
        if self.policy.method == "carpdemote":
            self.counter_changes(spec)

        self.now += spec.dt
        for name, result in zip(self.cfg, spec.results, strict=True):
            before = self.checks[name]
            self.checks[name] = step(before, result, *self.cfg[name])
            self.history[name].append(result)
            if self.checks[name].up is False and before.up is not False:
                self.down_edges += 1

        read_ok = spec.read_ok
        # A vhid missing from the read, at any round (a demotion edge too).
        absent = {self.keys[i % len(self.keys)] for i in spec.absent}
        advskew = self.policy.method == "advskew"
        present = {k: v for k, v in self.host.items() if k not in absent}
        inputs = Inputs(
            checks=dict(self.checks),
            now=self.now,
            advskews=present if advskew and read_ok else None,
            counter=self.counter if not advskew and read_ok else None,
        )
        was_demoted = self.mem.demoted
        self.refused_before = self.mem.refused
        self.mem, effects = decide(self.policy, self.mem, inputs)
        self.check_effects(effects, was_demoted, read_ok)
        if read_ok:
            self.unresolved = False
        all_ok, timed_out = self.run_commands(effects, spec.outcomes)
        self.check_memory(read_ok, all_ok, timed_out, set(present))
        return effects

    def run_commands(
        self, effects: Sequence[Effect], outcomes: Sequence[Outcome]
    ) -> tuple[bool, bool]:
        """Carry the commands out: did every one succeed (and was confirmed), did one time
        out (applied, its outcome unknown to carpd-py)?"""
        all_ok = True
        timed_out = False
        commands = [e for e in effects if isinstance(e, COMMANDS)]
        for i, effect in enumerate(commands):
            outcome = outcomes[i] if i < len(outcomes) else "ok"
            if isinstance(effect, CarpDemote) and not 0 <= self.counter + effect.delta <= 255:
                outcome = "fail"  # EINVAL from SIOCSIFGATTR
            all_ok = all_ok and outcome == "ok"
            if outcome == "fail":
                continue
            if isinstance(effect, SetAdvskew):
                for vhid, value in effect.skews.items():
                    self.host[(effect.interface, vhid)] = value
                    self.writer[(effect.interface, vhid)] = "carpd"
            elif isinstance(effect, CarpDemote):
                self.ours += effect.delta
            if outcome == "ok":
                self.mem = confirm(self.mem, effect)
            else:
                self.unresolved = timed_out = True
        return all_ok, timed_out

    # --- the oracles ----------------------------------------------------------------------

    def check_effects(self, effects: Sequence[Effect], was_demoted: bool, read_ok: bool) -> None:
        mem, policy = self.mem, self.policy
        kinds = [isinstance(e, COMMANDS) for e in effects]
        assert kinds == sorted(kinds), f"commands come last: {effects}"
        demote = [e for e in effects if isinstance(e, Demote)]
        restore = [e for e in effects if isinstance(e, Restore)]
        assert len(demote) + len(restore) <= 1, effects
        if demote:
            assert not was_demoted, "Demote only on an edge"
            assert all(c.up is not None for c in self.checks.values()), "Demote before ready"
            assert demote[0].reasons, "Demote with no reason"
            self.demotes += 1
            self.demoted_at = self.now
            self.touched.clear()
            self.forbidden = {k: set() for k in self.keys}
            self.share_taken = False
        if restore:
            assert was_demoted, "Restore only on an edge"
            assert self.demoted_at is not None
            assert self.now - self.demoted_at >= policy.hold_down, "(a) Restore in hold-down"
            assert all(c.up is True for c in self.checks.values()), "(a) Restore, check not up"
            assert not mem.maintenance, "(a) Restore in maintenance"
            self.restores += 1
            self.demoted_at = None
        assert mem.demoted == (self.demotes > self.restores)
        assert mem.since == self.demoted_at

        for effect in effects:
            if isinstance(effect, Adopt):
                assert self.writer[effect.key] == "operator", f"(e) adopted our own {effect}"
                assert effect.after == self.operator_value[effect.key]
                if was_demoted:
                    self.let_go.add(effect.key)
            if isinstance(effect, Manage):
                assert self.writer[effect.key] == "operator", f"(e) managed ours {effect}"
                assert effect.baseline < policy.advskew
                if was_demoted and effect.key in self.refused_before:
                    self.let_go.add(effect.key)
            if isinstance(effect, ShareAdopted) and was_demoted:
                self.share_let_go = True
        if demote:
            self.let_go.clear()
            self.share_let_go = False

        advskew_cmds = [e for e in effects if isinstance(e, SetAdvskew)]
        interfaces = [e.interface for e in advskew_cmds]
        assert len(interfaces) == len(set(interfaces)), "one SetAdvskew per interface"
        for cmd in advskew_cmds:
            assert read_ok, "a command without a read"
            assert cmd.skews, "an empty SetAdvskew"
            for vhid, value in cmd.skews.items():
                key = (cmd.interface, vhid)
                assert key in mem.vhids, f"command for an unmanaged vhid {key}"
                assert key not in mem.refused
                if mem.demoted:
                    want = max(policy.advskew, mem.vhids[key].baseline)
                    assert value == want, f"(a) back to baseline while demoted {cmd}"
                    assert value >= self.host[key], f"a demotion lowers an advskew {cmd}"
                else:
                    assert value == mem.vhids[key].baseline, f"(a) restore to non-baseline {cmd}"
                if not demote:
                    assert key not in self.touched, f"(d) hand change of {key} fought: {cmd}"
                    assert value not in self.forbidden[key], f"(d) hand change reverted {cmd}"
        for change in (e for e in effects if isinstance(e, CarpDemote)):
            assert read_ok, "a command without a read"
            assert change.group == policy.group
            assert 0 < abs(change.delta) <= policy.carpdemote
            if mem.demoted:
                assert change.delta > 0, f"(a) share taken away while demoted {change}"
                assert demote or not self.share_taken, f"(d) share put back {change}"
            else:
                assert change.delta < 0, f"share added while not demoted {change}"

    def check_memory(
        self, read_ok: bool, all_ok: bool, timed_out: bool, present: set[VhidKey]
    ) -> None:
        mem, policy = self.mem, self.policy
        assert not (set(mem.vhids) & mem.refused)
        if policy.method == "advskew" and read_ok:
            for key, rec in mem.vhids.items():
                if key not in present or key in mem.unconfirmed:
                    continue  # a hand change there is not seen yet, or seen once only
                assert rec.baseline == self.operator_value[key], f"(e) baseline of {key}: {rec}"
                if not all_ok:
                    continue
                assert self.host[key] == rec.target, f"(g) {key} not at its target: {rec}"
                held = mem.demoted and key not in self.let_go
                want = max(rec.baseline, policy.advskew) if held else rec.baseline
                assert rec.target == want, f"(g) {key} wants {rec.target}, not {want}"
        if policy.method == "carpdemote" and read_ok and not timed_out:
            assert mem.share == self.ours, f"share {mem.share}, really {self.ours}"
        if policy.method == "carpdemote" and read_ok and all_ok:
            held = mem.demoted and not self.share_let_go
            assert mem.share_target == (policy.carpdemote if held else 0), f"(g) {mem}"
            assert mem.share == mem.share_target, f"(g) share not where wanted: {mem}"

    def bad_runs(self) -> int:
        """Runs of bad rounds (NONE is no round) that can make a check go down."""
        total = 0
        for name, results in self.history.items():
            fall = self.cfg[name][0]
            judged = [r for r in results if r is not Round.NONE]
            for bad, run in groupby(judged, key=lambda r: r is not Round.GOOD):
                rounds = list(run)
                if bad and (len(rounds) >= fall or Round.HARD in rounds):
                    total += 1
        return total

    def heal(self) -> None:
        """(c): all good for long enough, commands working, nobody touching anything."""
        self.mem = set_maintenance(self.mem, False)
        good = tuple(G for _ in self.cfg)
        rise = max(r for _, r in self.cfg.values())
        # A round per hold-down: a check that gets its first verdict now may still demote
        # (another one is down) before all are up; the restore then comes a round later.
        dt = max(self.policy.hold_down, 1.0)
        # A vhid seen once only is managed at the next read (issue 9): two rounds more.
        for _ in range(rise + 2):
            self.play(Spec(good, dt=dt))
        assert self.play(Spec(good, dt=dt)) == (), "still acting after healing"
        mem = self.mem
        assert not mem.demoted
        assert mem.reasons == ()
        assert mem.since is None
        if self.policy.method == "advskew":
            for key in self.keys:
                assert self.host[key] == self.operator_value[key], f"(c) {key} not at baseline"
                if self.host[key] >= self.policy.advskew:
                    assert key in mem.refused or mem.vhids[key].baseline == self.host[key]
                else:
                    value = self.host[key]
                    assert mem.vhids[key] == VhidRecord(value, value, value), f"(c) {key}"
        else:
            assert mem.share == mem.share_target == 0, f"(c) share left: {mem}"
            assert self.ours == 0, f"(c) {self.ours} of ours left in the counter"
            assert self.counter == self.kernel + self.op


def run(sc: Scenario) -> Sim:
    sim = Sim(sc)
    for spec in sc.rounds:
        sim.play(spec)
    assert sim.demotes <= sim.down_edges + sim.maintenance_edges, "(b) more Demotes than edges"
    assert sim.demotes <= sim.bad_runs() + sim.maintenance_edges, "(b) more Demotes than runs"
    sim.heal()
    return sim


# --- strategies ---------------------------------------------------------------------------


RESULTS = (G, G, G, B, B, B, H, N)
OUTCOMES: tuple[Outcome, ...] = ("ok", "ok", "ok", "fail", "timeout")
OPERATOR: tuple[OperatorCounter, ...] = ("", "", "", "", "", "zero", "add")


def specs(n_checks: int, results: Sequence[Round] = RESULTS) -> st.SearchStrategy[Spec]:
    hand = st.tuples(
        st.integers(0, len(ALL_KEYS) - 1),
        st.one_of(st.integers(0, 254), st.sampled_from([0, 100, 240, 250])),
    )
    return st.builds(
        Spec,
        results=st.tuples(*[st.sampled_from(results)] * n_checks),
        dt=st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0, 10.0]),
        read_ok=st.sampled_from([True, True, True, True, False]),
        outcomes=st.lists(st.sampled_from(OUTCOMES), max_size=3).map(tuple),
        hand=st.one_of(st.none(), st.none(), hand),
        absent=st.one_of(
            st.just(()), st.just(()), st.just(()), st.tuples(st.integers(0, len(ALL_KEYS) - 1))
        ),
        maintenance=st.sampled_from([None, None, None, None, None, None, True, False]),
        kernel=st.sampled_from([0, 0, 0, 1, -1]),
        operator=st.sampled_from(OPERATOR),
    )


@st.composite
def scenarios(
    draw: st.DrawFn,
    method: Method,
    min_count: int = 1,
    results: Sequence[Round] = RESULTS,
) -> Scenario:
    n = draw(st.integers(1, len(CHECK_NAMES)))
    counts = st.integers(min_count, 4)
    checks = tuple((name, draw(counts), draw(counts)) for name in CHECK_NAMES[:n])
    keys = draw(st.lists(st.sampled_from(ALL_KEYS), min_size=1, max_size=4, unique=True))
    value = st.one_of(st.integers(0, 239), st.sampled_from([0, 100, 240, 250, 254]))
    host = tuple((key, draw(value)) for key in sorted(keys))
    return Scenario(
        method=method,
        hold_down=draw(st.sampled_from([0.0, 1.0, 2.5, 10.0])),
        checks=checks,
        host=host,
        rounds=tuple(draw(st.lists(specs(n, results), min_size=3, max_size=40))),
    )


# --- vhids missing from the read at any round (a bug these tests found, fixed) ---------

K11: VhidKey = ("carp1", 1)

ADVSKEW_BUG = Scenario(
    "advskew",
    0.0,
    (("sync", 1, 1),),
    ((K01, 0), (K11, 30)),
    (
        Spec((G,)),
        Spec((B,), absent=(1,)),  # Demote edge; carp1 is missing from the read
        Spec((B,)),  # carp1 is back at 30 and stays there while demoted
    ),
)


# --- the properties -----------------------------------------------------------------------


@CI
@example(sc=ADVSKEW_BUG)
@given(sc=scenarios("advskew"))
def test_advskew_invariants(sc: Scenario) -> None:
    run(sc)


@CI
@given(sc=scenarios("carpdemote"))
def test_carpdemote_invariants(sc: Scenario) -> None:
    run(sc)


def isolate_bad_rounds(sc: Scenario) -> Scenario:
    """Every bad round followed by a good one before the next bad one; no maintenance."""
    last_bad = [False] * len(sc.checks)
    rounds = []
    for spec in sc.rounds:
        results = []
        for i, given_result in enumerate(spec.results):
            result = Round.GOOD if given_result is Round.BAD and last_bad[i] else given_result
            if result is not Round.NONE:
                last_bad[i] = result is Round.BAD
            results.append(result)
        rounds.append(replace(spec, results=tuple(results), maintenance=None))
    return replace(sc, rounds=tuple(rounds))


@CI
@given(sc=scenarios("advskew", min_count=2, results=(G, G, B, N)).map(isolate_bad_rounds))
def test_single_bad_rounds_never_demote(sc: Scenario) -> None:
    sim = run(sc)
    assert sim.demotes == 0
    assert sim.down_edges == 0


@CI
@given(sc=scenarios("advskew"))
def test_demotions_are_bounded_by_fall(sc: Scenario) -> None:
    """Without maintenance every Demote needs its own run of `fall` bad rounds (or a HARD)
    after every check was up: at most one Demote per such run."""
    sc = replace(sc, rounds=tuple(replace(s, maintenance=None) for s in sc.rounds))
    sim = run(sc)
    assert sim.maintenance_edges == 0
    assert sim.demotes <= sim.down_edges <= sim.bad_runs()
