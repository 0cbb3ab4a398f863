"""The pair rule (pair.py): a truth table, and properties over generated pairs of views.

The convergence property drives the simulator's election rule (`carpd_py.sim.election.react`,
carp_proto_input_c() of ip_carp.c) with the advskews that decide() leaves on each node, until
the two nodes' states settle (`settle` below adds carp_master_down(): a BACKUP that hears no
master takes over, the shorter advertisement interval first).
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carpd_py.decide import Demote, Inputs, Memory, Policy, SetAdvskew, decide
from carpd_py.hysteresis import Check
from carpd_py.pair import (
    ALONE,
    SLACK,
    CheckState,
    NodeView,
    Peer,
    Role,
    Verdict,
    decide_pair,
    judge,
    yields,
)
from carpd_py.sim.election import Contender, react

UP = CheckState(up=True, good=50)  # good for a while
DOWN = CheckState(up=False, bad=3, fall=3)  # just went down (fall 3)
HARD = CheckState(up=False, bad=3, fall=3, local=True)  # its own SYNC link read down
FAILING = CheckState(up=True, bad=1, fall=3)  # bad, not down yet
ISP = "upstream:isp"


def view(session: str = "a", **checks: CheckState) -> NodeView:
    named = {
        k.replace("_", ":", 1) if k.startswith("upstream") else k: v for k, v in checks.items()
    }
    return NodeView(session=session, checks=MappingProxyType(named))


# --- the truth table: (my check, the peer's check, fresh, acked) -> verdict ------------------

TABLE = [
    # name, mine, theirs, fresh, acked, verdict
    ("sync", DOWN, DOWN, True, True, Verdict.SHARED),
    ("sync", HARD, HARD, True, True, Verdict.SHARED),  # the direct cable: both ends
    ("sync", DOWN, UP, True, True, Verdict.ACT),
    ("sync", HARD, UP, True, True, Verdict.ACT),  # one SYNC port, no sync.peer on the other
    ("sync", HARD, DOWN, True, True, Verdict.ACT),  # my port; the peer's probe fails for it
    ("sync", DOWN, HARD, True, True, Verdict.THEIRS),  # the peer's port; my probe fails
    ("sync", HARD, FAILING, True, True, Verdict.ACT),  # mine, whatever it will say
    ("sync", DOWN, replace(FAILING, local=True), True, True, Verdict.THEIRS),
    ("sync", DOWN, FAILING, True, True, Verdict.WAIT),  # its verdict is pending
    ("sync", DOWN, UP, True, False, Verdict.WAIT),  # it has not heard of my fault yet
    ("sync", HARD, UP, True, False, Verdict.WAIT),
    ("sync", DOWN, DOWN, True, False, Verdict.SHARED),  # it says so already
    # the direct cable back: the peer's link reads up first, its check waits for rise; mine
    # read the link down an instant earlier: still the shared fault, not mine
    ("sync", HARD, CheckState(up=False, bad=0, fall=3), True, True, Verdict.SHARED),
    # ... and once its check is up again, a few rounds more: my read may lag its
    ("sync", HARD, CheckState(up=True, good=3, rise=3), True, True, Verdict.WAIT),
    ("sync", HARD, CheckState(up=True, good=3 + SLACK, rise=3), True, True, Verdict.ACT),
    (ISP, DOWN, DOWN, True, True, Verdict.SHARED),
    (ISP, DOWN, UP, True, True, Verdict.ACT),
    (ISP, DOWN, FAILING, True, True, Verdict.WAIT),
    (ISP, DOWN, None, True, True, Verdict.ACT),  # the peer does not watch that upstream
    # without a fresh peer: as alone, whatever its last view said
    ("sync", DOWN, DOWN, False, True, Verdict.ACT),
    ("sync", HARD, HARD, False, True, Verdict.ACT),
    (ISP, DOWN, DOWN, False, True, Verdict.ACT),
]


@pytest.mark.parametrize(("name", "mine", "theirs", "fresh", "acked", "verdict"), TABLE)
def test_truth_table(
    name: str,
    mine: CheckState,
    theirs: CheckState | None,
    fresh: bool,
    acked: bool,
    verdict: Verdict,
) -> None:
    me = NodeView("a", MappingProxyType({name: mine}))
    them = NodeView("b", MappingProxyType({name: theirs} if theirs is not None else {}))
    acks = frozenset({name}) if acked else frozenset()
    decision = decide_pair(me, Peer(them, fresh=fresh, acked=acks))
    assert decision.verdicts.get(name, Verdict.ACT) is verdict
    # and what decide() does with it: demote only for ACT
    checks = {name: Check(up=False, bad=mine.bad)}
    _, effects = decide(Policy(), Memory(), inputs(checks, decision.withheld))
    assert any(isinstance(e, Demote) for e in effects) == (verdict is Verdict.ACT)


def inputs(checks: dict[str, Check], withheld: frozenset[str] = frozenset()) -> Inputs:
    return Inputs(
        checks=MappingProxyType(checks),
        now=100.0,
        advskews={("carp0", 10): 0, ("carp1", 20): 0},
        withheld=withheld,
    )


def test_a_wait_lasts_at_most_the_peers_fall_rounds() -> None:
    peer = CheckState(up=True, bad=1, fall=4)
    verdicts = [
        judge("sync", CheckState(up=False, bad=b, fall=3), peer, True) for b in range(3, 12)
    ]
    waited = verdicts.index(Verdict.ACT)
    assert verdicts[:waited] == [Verdict.WAIT] * waited
    assert set(verdicts[waited:]) == {Verdict.ACT}
    assert waited == 4 + SLACK  # the peer's fall, plus the message and one spare round


def test_an_unacknowledged_peer_is_waited_for_a_bounded_time_too() -> None:
    me = CheckState(up=False, bad=2, fall=2, local=True)
    assert judge("sync", me, UP, False) is Verdict.WAIT
    assert judge("sync", replace(me, bad=2 + 3 + SLACK), UP, False) is Verdict.ACT


def test_maintenance_always_demotes_and_says_when_the_peer_is_no_healthier() -> None:
    me = replace(view("a"), maintenance=True)
    sick = view("b", sync=DOWN)
    decision = decide_pair(me, Peer(sick, fresh=True))
    assert decision.no_healthier
    assert not decide_pair(me, Peer(view("b", sync=UP), fresh=True)).no_healthier
    both = decide_pair(me, Peer(replace(view("b"), maintenance=True), fresh=True))
    assert both.no_healthier
    memory = Memory(maintenance=True)
    _, effects = decide(Policy(), memory, inputs({}, decision.withheld | {"maintenance"}))
    assert Demote(("maintenance",)) in effects  # never withheld, even if asked


def test_both_demoted_one_side_goes_one_step_deeper() -> None:
    roles_a = {("carp0", 10): Role("MASTER", 240), ("carp1", 20): Role("BACKUP", 240)}
    roles_b = {("carp0", 10): Role("BACKUP", 240), ("carp1", 20): Role("MASTER", 240)}
    a = NodeView("a", demoted=True, roles=MappingProxyType(roles_a))
    b = NodeView("b", demoted=True, roles=MappingProxyType(roles_b))
    da, db = decide_pair(a, Peer(b, fresh=True)), decide_pair(b, Peer(a, fresh=True))
    assert da.split
    assert db.split
    assert (da.deeper, db.deeper) == (False, True)  # a tie: the larger session yields
    memory = Memory(maintenance=True)
    memory, _ = decide(Policy(), memory, inputs({}))
    memory, effects = decide(Policy(), memory, replace(inputs({}), deeper=True))
    assert [e for e in effects if isinstance(e, SetAdvskew)] == [
        SetAdvskew("carp0", MappingProxyType({10: 241})),
        SetAdvskew("carp1", MappingProxyType({20: 241})),
    ]
    memory, effects = decide(Policy(), memory, replace(inputs({}), deeper=False))
    assert all(rec.target == 240 for rec in memory.vhids.values())


def test_split_brain_is_a_vhid_master_on_both() -> None:
    roles = {("carp0", 10): Role("MASTER", 0), ("carp1", 20): Role("MASTER", 0)}
    a = NodeView("a", roles=MappingProxyType(roles))
    b = NodeView("b", roles=MappingProxyType({("carp0", 10): Role("MASTER", 100)}))
    decision = decide_pair(a, Peer(b, fresh=True))
    assert decision.split_brain == (10,)
    assert not decision.split


# --- properties --------------------------------------------------------------------------

REASONS = ("sync", ISP, "upstream:wan2")
fall = st.integers(1, 5)


@st.composite
def check_states(draw: st.DrawFn, name: str) -> CheckState:
    f = draw(fall)
    kind = draw(st.sampled_from(["up", "failing", "down", "none"]))
    local = name == "sync" and kind == "down" and draw(st.booleans())
    if kind == "up":
        return CheckState(up=True, bad=0, fall=f, good=draw(st.integers(0, 12)), rise=3)
    if kind == "failing":
        return CheckState(
            up=draw(st.sampled_from([True, None])),
            bad=draw(st.integers(1, f - 1)) if f > 1 else 0,
            fall=f,
        )
    if kind == "none":
        return CheckState(up=None, bad=0, fall=f)
    return CheckState(up=False, bad=draw(st.integers(f, f + 12)), fall=f, local=local)


@st.composite
def node_views(draw: st.DrawFn, session: str) -> NodeView:
    names = draw(st.lists(st.sampled_from(REASONS), unique=True, max_size=3))
    checks = {n: draw(check_states(n)) for n in names}
    return NodeView(
        session=session,
        checks=MappingProxyType(checks),
        maintenance=draw(st.booleans()),
        demoted=draw(st.booleans()),
    )


@given(node_views("a"), node_views("b"), st.frozensets(st.sampled_from(REASONS)),
       st.frozensets(st.sampled_from(REASONS)))  # fmt: skip
def test_given_the_same_pair_of_views_the_two_never_both_act_on_a_shared_fault(
    a: NodeView, b: NodeView, acked_a: frozenset[str], acked_b: frozenset[str]
) -> None:
    da = decide_pair(a, Peer(b, fresh=True, acked=acked_a))
    db = decide_pair(b, Peer(a, fresh=True, acked=acked_b))
    for reason in set(a.reasons) & set(b.reasons) - {"maintenance"}:
        assert not (da.verdicts[reason] is Verdict.ACT and db.verdicts[reason] is Verdict.ACT)
    # and a reason both report down, with the same attribution, is withheld on both
    for reason in set(a.reasons) & set(b.reasons) - {"maintenance"}:
        if a.checks[reason].local == b.checks[reason].local:
            assert da.verdicts[reason] is db.verdicts[reason] is Verdict.SHARED
    assert not (da.deeper and db.deeper)
    if a.demoted and b.demoted:
        assert da.deeper != db.deeper


@given(node_views("a"), node_views("b"), st.frozensets(st.sampled_from(REASONS)))
def test_a_reason_only_this_node_has_is_acted_on_once_the_peer_has_heard(
    a: NodeView, b: NodeView, acked: frozenset[str]
) -> None:
    decision = decide_pair(a, Peer(b, fresh=True, acked=acked))
    for reason, verdict in decision.verdicts.items():
        theirs = b.checks.get(reason)
        healthy = theirs is None or (
            theirs.bad == 0 and theirs.up is not False and theirs.good >= theirs.rise + SLACK
        )
        if healthy and reason in acked:
            assert verdict is Verdict.ACT
        if healthy and a.checks[reason].bad >= a.checks[reason].fall + (theirs or UP).fall + SLACK:
            assert verdict is Verdict.ACT  # every wait ends


@given(
    node_views("a"), st.one_of(st.none(), node_views("b")), st.frozensets(st.sampled_from(REASONS))
)
def test_without_a_fresh_peer_the_old_rule_holds_exactly(
    a: NodeView, b: NodeView | None, acked: frozenset[str]
) -> None:
    decision = decide_pair(a, None if b is None else Peer(b, fresh=False, acked=acked))
    assert decision == ALONE
    assert not decision.withheld
    assert not decision.deeper
    checks = {n: Check(up=c.up, bad=c.bad) for n, c in a.checks.items()}
    memory = Memory(maintenance=a.maintenance)
    plain = Inputs(checks=MappingProxyType(checks), now=5.0, advskews={("carp0", 10): 0})
    paired = replace(plain, withheld=decision.withheld, deeper=decision.deeper)
    assert decide(Policy(), memory, paired) == decide(Policy(), memory, plain)


# --- convergence: the pair settles with every managed VIP on one node -----------------------


def settle(contenders: list[Contender]) -> None:
    """Advertisements (only a MASTER sends) and master-down timers until nothing changes."""
    for _ in range(16):
        moved = False
        for s, sender in enumerate(contenders):
            if sender.state != "MASTER":
                continue
            for r, receiver in enumerate(contenders):
                new = react(receiver, sender) if r != s else None
                if new is not None:
                    receiver.state = new
                    moved = True
        if not any(c.state == "MASTER" for c in contenders):
            first = min(range(len(contenders)), key=lambda i: (contenders[i].tv, i))
            contenders[first].state = "MASTER"  # carp_master_down(): the shortest timer fires
            moved = True
        if not moved:
            return


POLICY = Policy(hold_down=0.0)


@st.composite
def pairs(
    draw: st.DrawFn,
) -> tuple[list[tuple[int, int]], list[tuple[str, str]], dict[str, NodeView]]:
    """baselines per vhid (A's, B's: the primary's lower on every vhid), roles per vhid
    (anything, split brain included), and each node's checks and maintenance."""
    n = draw(st.integers(1, 4))
    primary_a = draw(st.booleans())
    baselines = []
    for _ in range(n):
        lo = draw(st.integers(0, 150))
        hi = draw(st.integers(lo + 1, 239))
        baselines.append((lo, hi) if primary_a else (hi, lo))
    states = st.sampled_from(["MASTER", "BACKUP"])
    roles = [(draw(states), draw(states)) for _ in range(n)]
    views = {}
    for name in "AB":
        names = draw(st.lists(st.sampled_from(REASONS), unique=True, max_size=2))
        checks = {}
        for r in names:
            local = r == "sync" and draw(st.booleans())
            checks[r] = CheckState(up=False, bad=3, fall=3, local=local)
        views[name] = NodeView(
            session=name.lower(), checks=MappingProxyType(checks), maintenance=draw(st.booleans())
        )
    return baselines, roles, views


def run_pair(
    baselines: list[tuple[int, int]],
    roles: list[tuple[str, str]],
    views: dict[str, NodeView],
    rounds: int,
) -> tuple[list[tuple[str, str]], dict[str, Memory]]:
    keys = [(f"carp{i}", 10 + i) for i in range(len(baselines))]
    memory = {name: Memory(maintenance=views[name].maintenance) for name in "AB"}
    skews = {name: {k: baselines[i][j] for i, k in enumerate(keys)} for j, name in enumerate("AB")}
    for _ in range(rounds):
        seen = {}
        for j, name in enumerate("AB"):
            node_roles = {k: Role(roles[i][j], skews[name][k]) for i, k in enumerate(keys)}
            seen[name] = replace(
                views[name], demoted=memory[name].demoted, roles=MappingProxyType(node_roles)
            )
        for name, other in (("A", "B"), ("B", "A")):
            mine = seen[name]
            decision = decide_pair(mine, Peer(seen[other], fresh=True, acked=frozenset(REASONS)))
            checks = {r: Check(up=False, bad=3) for r in mine.checks}
            inp = Inputs(
                checks=MappingProxyType(checks),
                now=1.0,
                advskews=MappingProxyType(dict(skews[name])),
                withheld=decision.withheld,
                deeper=decision.deeper,
            )
            mem, effects = decide(POLICY, memory[name], inp)
            for e in effects:
                if isinstance(e, SetAdvskew):
                    for vhid, skew in e.skews.items():
                        skews[name][(e.interface, vhid)] = skew
            memory[name] = mem
        new_roles = []
        for i, k in enumerate(keys):
            contenders = [
                Contender(roles[i][j], 1, skews[name][k], 0, True) for j, name in enumerate("AB")
            ]
            settle(contenders)
            new_roles.append((contenders[0].state, contenders[1].state))
        roles = new_roles
    return roles, memory


@settings(max_examples=300, deadline=None)
@given(pairs())
def test_the_pair_always_converges_with_the_vips_together(
    case: tuple[list[tuple[int, int]], list[tuple[str, str]], dict[str, NodeView]],
) -> None:
    baselines, roles, views = case
    settled, _ = run_pair(baselines, roles, views, rounds=4)
    assert all(sorted(r) == ["BACKUP", "MASTER"] for r in settled)  # one MASTER per vhid
    holders = {r.index("MASTER") for r in settled}
    assert len(holders) == 1, settled  # ... all on one node
    again, _ = run_pair(baselines, roles, views, rounds=6)
    assert again == settled  # and it stays there
    # shared reasons never moved the VIPs off a healthy primary; a reason only one node has
    # moves them to the other
    a, b = views["A"], views["B"]
    only_a = {r for r in a.reasons if r not in b.reasons} - {"maintenance"}
    only_b = {r for r in b.reasons if r not in a.reasons} - {"maintenance"}
    theirs_a = {r for r in only_a if r == "sync" and a.checks[r].local}
    theirs_b = {r for r in only_b if r == "sync" and b.checks[r].local}
    if (only_a or a.maintenance) and not (b.reasons or b.maintenance):
        assert holders == {1}
    if (only_b or b.maintenance) and not (a.reasons or a.maintenance):
        assert holders == {0}
    same = all(a.checks[r].local == b.checks[r].local for r in set(a.checks) & set(b.checks))
    if a.reasons == b.reasons and not (theirs_a or theirs_b or a.maintenance) and same:
        primary = 0 if baselines[0][0] < baselines[0][1] else 1
        assert holders == {primary}  # nothing moved off the primary


def test_yields_is_antisymmetric() -> None:
    a, b = NodeView("a"), NodeView("b")
    assert yields(a, b) != yields(b, a)
