"""The simulated kernel against OpenBSD's election rules (ip_carp.c r1.370, the reference)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from carpd_py.sim.election import Contender, elect, react
from carpd_py.sim.events import LOG_CRIT, LOG_WARNING
from carpd_py.sim.state import BACKUP, INIT, MASTER
from carpd_py.sim.topology import build_world, handbook_node
from carpd_py.sim.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.create(tmp_path / "state.json", clock=lambda: 1_700_000_000.0)


def roles(world: World) -> dict[str, tuple[str, str]]:
    return {n: (world.state(n, "carp0"), world.state(n, "carp1")) for n in ("A", "B")}


A_MASTER = {"A": (MASTER, MASTER), "B": (BACKUP, BACKUP)}
B_MASTER = {"A": (BACKUP, BACKUP), "B": (MASTER, MASTER)}


# --- the decision of one advertisement, as carp_proto_input_c() takes it ---------------------


def c(
    state: str, advskew: int, demote: int = 0, preempt: bool = True, advbase: int = 1
) -> Contender:
    return Contender(state=state, advbase=advbase, advskew=advskew, demote=demote, preempt=preempt)


def test_master_yields_to_a_faster_master_with_no_higher_demote() -> None:
    assert react(c(MASTER, 100), c(MASTER, 0)) == BACKUP
    assert react(c(MASTER, 0), c(MASTER, 100)) is None
    assert react(c(MASTER, 0), c(MASTER, 0)) == BACKUP  # equal: the receiver yields


def test_master_yields_to_a_lower_demote_whatever_the_skew() -> None:
    assert react(c(MASTER, 0, demote=1), c(MASTER, 200, demote=0)) == BACKUP
    assert react(c(MASTER, 100, demote=0), c(MASTER, 0, demote=1)) is None


def test_backup_takes_over_a_slower_master_only_with_preempt() -> None:
    assert react(c(BACKUP, 0, preempt=True), c(MASTER, 100)) == MASTER
    assert react(c(BACKUP, 0, preempt=False), c(MASTER, 100)) is None
    assert react(c(BACKUP, 100, preempt=True), c(MASTER, 0)) is None


def test_backup_takes_over_a_demoted_master_whatever_preempt() -> None:
    assert react(c(BACKUP, 100, preempt=False), c(MASTER, 0, demote=1)) == MASTER
    # preempt does not help against a master with a better demote count
    assert react(c(BACKUP, 0, demote=1, preempt=True), c(MASTER, 100, demote=0)) is None


def test_backup_treats_a_master_slower_than_three_intervals_as_down() -> None:
    assert react(c(BACKUP, 0, preempt=False), c(MASTER, 0, advbase=4)) == MASTER


def test_elect_from_boot_shortest_interval_first_then_demote() -> None:
    a, b = c(BACKUP, 0, demote=1), c(BACKUP, 100)

    def hears(r: int, s: int) -> bool:
        return r != s

    changes = elect([a, b], hears)
    # A's master-down timer fires first (shorter interval); B then sees A's higher demote.
    assert changes == [(0, BACKUP, MASTER), (1, BACKUP, MASTER), (0, MASTER, BACKUP)]


def test_elect_tie_goes_to_the_first_contender() -> None:
    a, b = c(MASTER, 50), c(MASTER, 50)
    assert elect([a, b], lambda r, s: r != s) == [(1, MASTER, BACKUP)]


def test_elect_never_flaps_when_demote_and_skew_disagree() -> None:
    # A: faster but demoted, preempt on; B: slower, not demoted.
    a, b = c(MASTER, 0, demote=2), c(BACKUP, 100)
    changes = elect([a, b], lambda r, s: r != s)
    assert changes == [(1, BACKUP, MASTER), (0, MASTER, BACKUP)]
    assert (a.state, b.state) == (BACKUP, MASTER)


# --- the handbook pair -----------------------------------------------------------------------


def test_boot_a_master_b_backup_and_the_log(world: World) -> None:
    assert roles(world) == A_MASTER
    events = world.events()
    inits = [e for e in events if e.old == INIT]
    assert len(inits) == 4
    assert all(e.new == BACKUP and e.level == LOG_WARNING and not e.logged for e in inits)
    logged = [(e.node, e.text) for e in events if e.logged]
    assert logged == [
        ("A", "carp0: state transition: BACKUP -> MASTER"),
        ("A", "carp1: state transition: BACKUP -> MASTER"),
    ]
    assert all(e.time == 1_700_000_000.0 for e in events)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_carpdev_link_loss_is_init_plus_one_demote_and_full_failover(world: World) -> None:
    world.sysctl_set("B", "preempt", 0)  # B takes carp1 over by the demote rule alone
    world.set_link("A", "em0", up=False)
    assert world.state("A", "carp0") == INIT
    assert world.demote_count("A", "carp") == 1
    assert roles(world) == {"A": (INIT, BACKUP), "B": (MASTER, MASTER)}
    carp0 = world.view("A").get("carp0")
    assert carp0 is not None
    assert carp0.status == "invalid"
    assert not carp0.running
    em0 = world.view("A").get("em0")
    assert em0 is not None
    assert (em0.status, em0.media) == ("no carrier", "Ethernet autoselect (none)")


def test_failback_with_preempt_on(world: World) -> None:
    world.set_link("A", "em0", up=False)
    world.set_link("A", "em0", up=True)
    assert world.demote_count("A") == 0
    assert roles(world) == A_MASTER
    logged = [(e.node, e.text) for e in world.events() if e.logged][-4:]
    assert logged == [
        ("A", "carp0: state transition: BACKUP -> MASTER"),
        ("B", "carp0: state transition: MASTER -> BACKUP"),
        ("A", "carp1: state transition: BACKUP -> MASTER"),
        ("B", "carp1: state transition: MASTER -> BACKUP"),
    ]


def test_no_failback_with_preempt_off(world: World) -> None:
    world.sysctl_set("A", "net.inet.carp.preempt", 0)
    world.set_link("A", "em0", up=False)
    world.set_link("A", "em0", up=True)
    assert roles(world) == B_MASTER
    world.sysctl_set("A", "preempt", 1)  # the next advertisement B sends is now slower
    assert roles(world) == A_MASTER


def test_sync_link_loss_demotes_groups_carp_and_pfsync(world: World) -> None:
    world.set_link("A", "em2", up=False)
    assert world.demote_count("A", "carp") == 1
    assert world.demote_count("A", "pfsync") == 1
    assert roles(world) == B_MASTER
    pfsync0 = world.view("A").get("pfsync0")
    assert pfsync0 is not None
    assert pfsync0.flag_names == ("UP",)  # RUNNING cleared
    world.set_link("A", "em2", up=True)
    assert (world.demote_count("A", "carp"), world.demote_count("A", "pfsync")) == (0, 0)
    assert roles(world) == A_MASTER


def test_ifconfig_down_on_the_carpdev_counts_as_link_loss(world: World) -> None:
    assert world.ifconfig("A", "em1", "down").code == 0
    assert world.state("A", "carp1") == INIT
    assert world.demote_count("A") == 1
    assert roles(world) == {"A": (BACKUP, INIT), "B": (MASTER, MASTER)}
    world.ifconfig("A", "em1", "up")
    assert roles(world) == A_MASTER


def test_advskew_moves_mastership_only_with_preempt(world: World) -> None:
    world.sysctl_set("B", "preempt", 0)
    assert world.ifconfig("A", "carp0", "advskew", "240").code == 0
    assert roles(world) == A_MASTER  # B does not preempt a slower master
    world.sysctl_set("B", "preempt", 1)
    assert roles(world) == {"A": (BACKUP, MASTER), "B": (MASTER, BACKUP)}
    world.ifconfig("A", "carp0", "advskew", "0")
    assert roles(world) == A_MASTER


def test_carpdemote_wins_over_preempt_off_and_restores_with_preempt_on(world: World) -> None:
    world.sysctl_set("B", "preempt", 0)
    assert world.ifconfig("A", "-g", "carp", "carpdemote", "50").code == 0
    assert world.demote_count("A") == 50
    assert roles(world) == B_MASTER
    assert world.ifconfig("A", "-g", "carp", "-carpdemote", "50").code == 0
    assert roles(world) == A_MASTER  # A has preempt on and advertises faster


def test_kernel_and_admin_demote_share_the_counter(world: World) -> None:
    world.ifconfig("A", "-g", "carp", "carpdemote", "5")
    world.set_link("A", "em2", up=False)
    assert world.demote_count("A") == 6
    world.set_link("A", "em2", up=True)
    assert world.demote_count("A") == 5
    world.ifconfig("A", "-g", "carp", "-carpdemote", "5")
    assert world.demote_count("A") == 0


def test_demote_count_is_capped_at_255_in_adverts(tmp_path: Path) -> None:
    world = World.create(tmp_path / "s.json")
    world.ifconfig("A", "-g", "carp", "carpdemote", "128")
    world.ifconfig("A", "-g", "carp", "carpdemote", "127")
    world.ifconfig("B", "-g", "egress", "carpdemote", "1")  # not a group of B's carp
    assert world.demote_count("A") == 255
    with world.modify() as state:
        node = state.node("A")
        iface = node.get("carp0")
        assert iface is not None
        assert node.carp_demote_count(iface) == 255
        node.group_demote["carp"] = 300  # more than ifconfig allows: the sum is capped
        assert node.carp_demote_count(iface) == 255
    assert roles(world) == B_MASTER


def test_equal_advskew_tie_is_deterministic(tmp_path: Path) -> None:
    b = handbook_node("B")
    b = replace(b, carps=tuple(replace(x, vhids=((x.vhids[0][0], 0),)) for x in b.carps))
    world = World.create(tmp_path / "s.json", build_world(handbook_node("A"), b))
    assert roles(world) == A_MASTER


def test_allow_zero_makes_two_masters(world: World) -> None:
    world.sysctl_set("B", "allow", 0)
    assert roles(world) == {"A": (MASTER, MASTER), "B": (MASTER, MASTER)}
    world.sysctl_set("B", "allow", 1)
    assert roles(world) == A_MASTER  # B hears A again: A is faster


def test_password_mismatch_makes_two_masters(world: World) -> None:
    world.ifconfig("B", "carp1", "pass", "other")
    assert roles(world) == {"A": (MASTER, MASTER), "B": (BACKUP, MASTER)}


def test_peer_alone_becomes_master(world: World) -> None:
    world.set_link("B", "em0", up=False)
    world.set_link("A", "em0", up=False)
    assert roles(world)["A"][0] == INIT
    assert roles(world)["B"][0] == INIT
    world.set_link("B", "em0", up=True)
    assert world.state("B", "carp0") == MASTER


def test_single_node_is_master_everywhere(tmp_path: Path) -> None:
    world = World.create(tmp_path / "s.json", "single")
    assert world.nodes() == ("A",)
    assert (world.state("A", "carp0"), world.state("A", "carp1")) == (MASTER, MASTER)


def test_multivhid_active_active_and_vhid_log_lines(tmp_path: Path) -> None:
    world = World.create(tmp_path / "s.json", "multivhid")
    assert world.state("A", "carp2", 1) == MASTER
    assert world.state("A", "carp2", 2) == BACKUP
    assert world.state("B", "carp2", 1) == BACKUP
    assert world.state("B", "carp2", 2) == MASTER
    carp2 = world.view("B").get("carp2")
    assert carp2 is not None
    assert carp2.carp is not None
    assert carp2.carp.balancing == "ip"
    assert carp2.status == "master"
    assert carp2.lladdr == "01:00:5e:00:01:01"
    texts = {e.text for e in world.events() if e.iface == "carp2" and e.logged}
    assert "carp2: state transition (vhid 2): BACKUP -> MASTER" in texts


def test_log_level_decides_what_is_logged_but_all_is_kept(world: World) -> None:
    world.sysctl_set("A", "log", 0)
    world.sysctl_set("B", "log", 7)
    before = len(world.events())
    world.set_link("A", "em0", up=False)
    new = world.events()[before:]
    transitions = [e for e in new if e.is_transition]
    assert {e.node for e in transitions} == {"A", "B"}
    assert not any(e.logged for e in new if e.node == "A")
    assert all(e.logged for e in new if e.node == "B")
    a_init = [e for e in transitions if e.node == "A" and e.new == INIT]
    assert [e.level for e in a_init] == [LOG_WARNING]
    b_master = [e for e in transitions if e.node == "B" and e.new == MASTER]
    assert {e.level for e in b_master} == {LOG_CRIT}
    assert new[0].syslog_line("fw1").endswith(" fw1 /bsd: carp0: state transition: MASTER -> INIT")


def test_ifconfig_carp_down_bows_out_and_up_comes_back(world: World) -> None:
    assert world.ifconfig("A", "carp0", "down").code == 0
    assert roles(world) == {"A": (INIT, MASTER), "B": (MASTER, BACKUP)}
    assert world.demote_count("A") == 0  # a carp interface down is no link loss
    assert world.ifconfig("A", "carp0", "up").code == 0
    assert roles(world) == A_MASTER


def test_a_much_slower_master_counts_as_down(world: World) -> None:
    world.sysctl_set("B", "preempt", 0)
    assert world.ifconfig("A", "carp0", "advbase", "4").code == 0  # 4 s > 3 x B's 1 s
    assert world.state("B", "carp0") == MASTER
    assert world.state("A", "carp0") == BACKUP
