"""The simulated kernel against OpenBSD's election rules and timers (ip_carp.c r1.370).

The world runs on an injected clock (`Clock`): a test moves time on and reads the state at
that moment, as carpd-py would, without sleeping.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from carpd_py.sim.election import Contender, react
from carpd_py.sim.events import LOG_CRIT, LOG_WARNING
from carpd_py.sim.state import BACKUP, INIT, MASTER
from carpd_py.sim.topology import build_world, handbook_node
from carpd_py.sim.world import BOOT_AGE, World

from .simclock import SETTLE, T0, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(tmp_path: Path, clock: Clock) -> World:
    return World.create(tmp_path / "state.json", clock=clock)


def roles(world: World) -> dict[str, tuple[str, str]]:
    return {n: (world.state(n, "carp0"), world.state(n, "carp1")) for n in ("A", "B")}


def later(world: World, clock: Clock, seconds: float = SETTLE) -> dict[str, tuple[str, str]]:
    """The roles `seconds` from now."""
    clock.step(seconds)
    return roles(world)


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
    """carp_proto_input_c(), third BACKUP rule."""
    assert react(c(BACKUP, 0, preempt=False), c(MASTER, 0, advbase=4)) == MASTER


def test_three_intervals_rule_counts_the_receivers_own_advskew() -> None:
    """carp_proto_input_c(): sc_tv keeps tv_usec = the receiver's advskew when tv_sec becomes
    3 x advbase, so a master at 3 s + 100/256 is not "down" for a receiver with advskew 200."""
    assert react(c(BACKUP, 200, preempt=False), c(MASTER, 100, advbase=3)) is None
    assert react(c(BACKUP, 0, preempt=False), c(MASTER, 100, advbase=3)) == MASTER


# --- the handbook pair -----------------------------------------------------------------------


def test_boot_a_master_b_backup_and_the_log(world: World, clock: Clock) -> None:
    """carp_setrun() from INIT, then carp_master_down(): A's master-down timer (3 s) runs out
    before B's (3 + 100/256 s); B hears A's advertisement and stays BACKUP."""
    assert roles(world) == A_MASTER
    events = [e for e in world.events() if e.kind == "carp"]
    inits = [e for e in events if e.old == INIT]
    assert len(inits) == 4
    assert all(e.new == BACKUP and e.level == LOG_WARNING and not e.logged for e in inits)
    boot = T0 - BOOT_AGE
    assert {e.time for e in inits} == {boot}
    logged = [(e.node, e.text, e.time) for e in events if e.logged]
    assert logged == [
        ("A", "carp0: state transition: BACKUP -> MASTER", boot + 3.0),
        ("A", "carp1: state transition: BACKUP -> MASTER", boot + 3.0),
    ]
    every = world.events()
    assert [e.seq for e in every] == list(range(1, len(every) + 1))


def test_advskew_moves_the_vip_with_the_next_advertisement(world: World, clock: Clock) -> None:
    """SIOCSVH ends in carp_setrun(): the MASTER's next carp_send_ad() is advbase +
    advskew/256 s after the command, and carries advskew 240; B preempts
    (carp_proto_input_c) when it arrives, not before."""
    assert world.ifconfig("A", "carp0", "advskew", "240").code == 0
    assert roles(world) == A_MASTER  # right after the command: nothing on the wire yet
    clock.step(1.0 + 239 / 256)
    assert roles(world) == A_MASTER
    clock.step(2 / 256 + 0.01)  # the advertisement has left: advbase + advskew/256
    assert roles(world) == {"A": (BACKUP, MASTER), "B": (MASTER, BACKUP)}
    moved = [e for e in world.events() if e.kind == "carp" and e.node == "B" and e.new == MASTER]
    assert moved[-1].time == pytest.approx(T0 + 1.0 + 240 / 256)


def test_carpdev_link_loss_master_replaced_after_master_down(world: World, clock: Clock) -> None:
    """carp_carpdev_state(): A's carp0 goes INIT and stops advertising, +1 on the demote
    counter; carp_group_demote_adj() going 0 -> 1 makes A's carp1 advertise at once (B takes
    carp1 by the demote rule), while B takes carp0 only when its master-down timer runs out:
    3 x advbase + advskew/256 after A's last advertisement (carp_setrun, carp_master_down)."""
    world.sysctl_set("B", "preempt", 0)  # B takes carp1 over by the demote rule alone
    clock.step(0.5)  # A's last carp0 advertisement left at T0 (boot + whole seconds)
    world.set_link("A", "em0", up=False)
    assert world.state("A", "carp0") == INIT
    assert world.demote_count("A", "carp") == 1
    assert roles(world) == {"A": (INIT, BACKUP), "B": (BACKUP, MASTER)}
    clock.step(3.0 + 100 / 256 - 0.5 - 0.01)
    assert world.state("B", "carp0") == BACKUP
    clock.step(0.02)
    assert roles(world) == {"A": (INIT, BACKUP), "B": (MASTER, MASTER)}
    down = [e for e in world.events() if e.kind == "carp" and e.node == "B" and e.iface == "carp0"]
    assert down[-1].time == pytest.approx(T0 + 3.0 + 100 / 256)
    carp0 = world.view("A").get("carp0")
    assert carp0 is not None
    assert carp0.status == "invalid"
    assert not carp0.running
    em0 = world.view("A").get("em0")
    assert em0 is not None
    assert (em0.status, em0.media) == ("no carrier", "Ethernet autoselect (none)")


def test_failback_with_preempt_on(world: World, clock: Clock) -> None:
    """carp_carpdev_state() back up: INIT -> BACKUP; A preempts B (carp_proto_input_c,
    preempt) at B's next advertisement."""
    world.set_link("A", "em0", up=False)
    assert later(world, clock) == {"A": (INIT, BACKUP), "B": (MASTER, MASTER)}
    world.set_link("A", "em0", up=True)
    assert world.demote_count("A") == 0
    assert later(world, clock) == A_MASTER
    logged = [(e.node, e.text) for e in world.events() if e.logged][-4:]
    assert sorted(logged) == sorted([
        ("A", "carp0: state transition: BACKUP -> MASTER"),
        ("B", "carp0: state transition: MASTER -> BACKUP"),
        ("A", "carp1: state transition: BACKUP -> MASTER"),
        ("B", "carp1: state transition: MASTER -> BACKUP"),
    ])  # fmt: skip


def test_preempt_off_keeps_the_master(world: World, clock: Clock) -> None:
    """carp_proto_input_c(): without net.inet.carp.preempt a BACKUP never takes over a master
    that advertises slower; A stays BACKUP after its link comes back."""
    world.sysctl_set("A", "net.inet.carp.preempt", 0)
    world.set_link("A", "em0", up=False)
    assert later(world, clock) == {"A": (INIT, BACKUP), "B": (MASTER, MASTER)}
    world.set_link("A", "em0", up=True)
    assert later(world, clock, 60.0) == B_MASTER
    world.sysctl_set("A", "preempt", 1)  # the next advertisement B sends is now slower
    assert later(world, clock, 1.5) == A_MASTER


def test_advskew_does_not_move_the_vip_without_preempt(world: World, clock: Clock) -> None:
    """carp_proto_input_c(): a slower master is kept without preempt; with it, the VIP moves
    at the next advertisement; advskew 0 again takes it back at B's next one."""
    world.sysctl_set("B", "preempt", 0)
    assert world.ifconfig("A", "carp0", "advskew", "240").code == 0
    assert later(world, clock) == A_MASTER
    world.sysctl_set("B", "preempt", 1)
    assert later(world, clock, 2.0) == {"A": (BACKUP, MASTER), "B": (MASTER, BACKUP)}
    world.ifconfig("A", "carp0", "advskew", "0")
    assert later(world, clock, 1.5) == A_MASTER


def test_carpdemote_moves_at_once_and_restores_with_preempt(world: World, clock: Clock) -> None:
    """if_setgroupattribs() -> carp_ifgattr_ioctl(): a demotion makes the masters advertise at
    once, so B takes over right after the command whatever its preempt; lifting it sends
    nothing, A takes back at B's next advertisement (A has preempt on)."""
    world.sysctl_set("B", "preempt", 0)
    assert world.ifconfig("A", "-g", "carp", "carpdemote", "50").code == 0
    assert world.demote_count("A") == 50
    assert roles(world) == B_MASTER
    assert world.ifconfig("A", "-g", "carp", "-carpdemote", "50").code == 0
    assert roles(world) == B_MASTER
    assert later(world, clock, 1.5) == A_MASTER


def test_sync_link_loss_demotes_and_pfsync_stays_running(world: World, clock: Clock) -> None:
    """pfsync_syncif_link() (if_pfsync.c r1.332, OpenBSD 7.4+): the syncdev's link only moves
    the carp demote counter, +1 "pfsync link"; pfsync0 keeps UP,RUNNING."""
    world.set_link("A", "em2", up=False)
    assert world.demote_count("A", "carp") == 1
    assert world.demote_count("A", "pfsync") == 1
    assert roles(world) == B_MASTER  # the 0 -> 1 demotion is advertised at once
    pfsync0 = world.view("A").get("pfsync0")
    assert pfsync0 is not None
    assert pfsync0.flag_names == ("UP", "RUNNING")
    texts = [e.text for e in world.events() if e.kind == "demote" and e.node == "A"]
    assert texts[-2:] == [
        "carp: pfsync0 demoted group carp by 1 to 1 (pfsync link)",
        "carp: pfsync0 demoted group pfsync by 1 to 1 (pfsync link)",
    ]
    world.set_link("A", "em2", up=True)
    assert (world.demote_count("A", "carp"), world.demote_count("A", "pfsync")) == (0, 0)
    assert later(world, clock) == A_MASTER


def test_ifconfig_down_on_the_carpdev_counts_as_link_loss(world: World, clock: Clock) -> None:
    """carp_carpdev_state(): !(IFF_UP) on the carpdev is handled like a lost link."""
    assert world.ifconfig("A", "em1", "down").code == 0
    assert world.state("A", "carp1") == INIT
    assert world.demote_count("A") == 1
    assert later(world, clock) == {"A": (BACKUP, INIT), "B": (MASTER, MASTER)}
    world.ifconfig("A", "em1", "up")
    assert later(world, clock) == A_MASTER


def test_kernel_and_admin_demote_share_the_counter(world: World) -> None:
    """carp_group_demote_adj() and if_setgroupattribs() add to the same ifg_carp_demoted."""
    world.ifconfig("A", "-g", "carp", "carpdemote", "5")
    world.set_link("A", "em2", up=False)
    assert world.demote_count("A") == 6
    world.set_link("A", "em2", up=True)
    assert world.demote_count("A") == 5
    world.ifconfig("A", "-g", "carp", "-carpdemote", "5")
    assert world.demote_count("A") == 0


def test_demote_count_is_capped_at_255_in_adverts(tmp_path: Path, clock: Clock) -> None:
    """carp_group_demote_count(): the sum over the groups, capped at 255."""
    world = World.create(tmp_path / "s.json", clock=clock)
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
    assert later(world, clock) == B_MASTER


def test_equal_advskew_tie_is_deterministic(tmp_path: Path, clock: Clock) -> None:
    """carp_master_down(): equal timers race on a real pair; here the first node fires first
    and the other hears it before its own timer runs out."""
    b = handbook_node("B")
    b = replace(b, carps=tuple(replace(x, vhids=((x.vhids[0][0], 0),)) for x in b.carps))
    world = World.create(tmp_path / "s.json", build_world(handbook_node("A"), b), clock=clock)
    assert roles(world) == A_MASTER


def test_allow_zero_makes_two_masters(world: World, clock: Clock) -> None:
    """carp_proto_input(): net.inet.carp.allow=0 drops every advertisement: B's timer runs
    out; with allow back, B hears A (faster) and yields (carp_proto_input_c, MASTER)."""
    world.sysctl_set("B", "allow", 0)
    assert later(world, clock) == {"A": (MASTER, MASTER), "B": (MASTER, MASTER)}
    world.sysctl_set("B", "allow", 1)
    assert later(world, clock, 1.5) == A_MASTER


def test_password_mismatch_makes_two_masters(world: World, clock: Clock) -> None:
    """carp_hmac_verify(): a different password, no advertisement accepted."""
    world.ifconfig("B", "carp1", "pass", "other")
    assert later(world, clock) == {"A": (MASTER, MASTER), "B": (BACKUP, MASTER)}


def test_peer_alone_becomes_master(world: World, clock: Clock) -> None:
    """carp_master_down(): nobody advertises, the timer runs out."""
    world.set_link("B", "em0", up=False)
    world.set_link("A", "em0", up=False)
    assert roles(world)["A"][0] == INIT
    assert roles(world)["B"][0] == INIT
    world.set_link("B", "em0", up=True)
    assert world.state("B", "carp0") == BACKUP
    clock.step(3.0 + 100 / 256 + 0.01)
    assert world.state("B", "carp0") == MASTER


def test_single_node_is_master_everywhere(tmp_path: Path) -> None:
    """carp_master_down() with no peer; the boot happened BOOT_AGE seconds ago."""
    world = World.create(tmp_path / "s.json", "single")
    assert world.nodes() == ("A",)
    assert (world.state("A", "carp0"), world.state("A", "carp1")) == (MASTER, MASTER)
    assert world.demote_count("A") == 0  # pfsync gave up its bulk request long ago


def test_multivhid_active_active_and_vhid_log_lines(tmp_path: Path) -> None:
    """carp_set_state(): "state transition (vhid N)" when an interface has several vhosts."""
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


def test_log_level_decides_what_is_logged_but_all_is_kept(world: World, clock: Clock) -> None:
    """CARP_LOG(): logged when net.inet.carp.log >= the level; the event is kept anyway."""
    world.sysctl_set("A", "log", 0)
    world.sysctl_set("B", "log", 7)
    before = len(world.events())
    world.set_link("A", "em0", up=False)
    clock.step(SETTLE)
    new = [e for e in world.events()[before:] if e.text]
    transitions = [e for e in new if e.is_transition]
    assert {e.node for e in transitions} == {"A", "B"}
    assert not any(e.logged for e in new if e.node == "A")
    assert all(e.logged for e in new if e.node == "B")
    a_init = [e for e in transitions if e.node == "A" and e.new == INIT]
    assert [e.level for e in a_init] == [LOG_WARNING]
    b_master = [e for e in transitions if e.node == "B" and e.new == MASTER]
    assert {e.level for e in b_master} == {LOG_CRIT}
    assert new[0].syslog_line("fw1").endswith(" fw1 /bsd: carp0: state transition: MASTER -> INIT")


def test_ifconfig_carp_down_bows_out_and_up_comes_back(world: World, clock: Clock) -> None:
    """carp_ioctl(SIOCSIFFLAGS): going down, the master bows out (advertises 255/255), so B
    takes over at once (carp_proto_input_c); up again, A preempts at B's next advertisement."""
    assert world.ifconfig("A", "carp0", "down").code == 0
    assert roles(world) == {"A": (INIT, MASTER), "B": (MASTER, BACKUP)}
    assert world.demote_count("A") == 0  # a carp interface down is no link loss
    assert world.ifconfig("A", "carp0", "up").code == 0
    assert later(world, clock, 1.5) == A_MASTER


def test_a_much_slower_master_counts_as_down(world: World, clock: Clock) -> None:
    """carp_proto_input_c(), third BACKUP rule: advbase 4 > 3 x B's 1 s + 100/256."""
    world.sysctl_set("B", "preempt", 0)
    assert world.ifconfig("A", "carp0", "advbase", "4").code == 0  # 4 s > 3 x B's 1 s
    clock.step(4.1)
    assert world.state("B", "carp0") == MASTER
    assert world.state("A", "carp0") == BACKUP


def test_the_world_at_rest_needs_no_write_to_be_read(world: World, clock: Clock) -> None:
    """A settled pair: no timer can change anything, so an hour later reads cost no write
    and the master-down time after a fault is counted from the last advertisement."""
    state = world.read()
    assert state.due is None
    clock.step(3600.25)
    assert roles(world) == A_MASTER
    world.set_link("A", "em0", up=False)  # A's last carp0 advertisement: 0.25 s ago
    clock.step(3.0 + 100 / 256 - 0.25 - 0.01)
    assert world.state("B", "carp0") == BACKUP
    clock.step(0.02)
    assert world.state("B", "carp0") == MASTER


def test_advance_returns_events_with_their_times_and_fields(world: World, clock: Clock) -> None:
    """World.advance(): what happened since the last look, each with its simulated time;
    link events carry what RTM_IFINFO needs (carp_set_state() -> if_link_state_change())."""
    world.set_link("A", "em0", up=False)
    clock.step(SETTLE)
    events = world.advance()
    b_carp0 = [e for e in events if e.node == "B" and e.iface == "carp0"]
    assert [(e.kind, e.new) for e in b_carp0] == [("carp", MASTER), ("link", "up")]
    assert b_carp0[0].time == b_carp0[1].time == pytest.approx(T0 + 3.0 + 100 / 256)
    link = b_carp0[1]
    assert link.link_state == 4
    assert link.index is not None
    assert link.flags is not None
    assert link.flags & 0x41 == 0x41  # UP, RUNNING
    assert world.advance() == []
