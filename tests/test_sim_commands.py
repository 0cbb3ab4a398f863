"""The simulated ifconfig and sysctl: output, error texts and exit codes of OpenBSD's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from carpd_py.parse import parse_group, parse_ifconfig, parse_sysctl
from carpd_py.sim.printed import Result
from carpd_py.sim.state import BACKUP, INIT, MASTER
from carpd_py.sim.topology import NodeSpec, build_world
from carpd_py.sim.world import World

from .simclock import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(tmp_path: Path, clock: Clock) -> World:
    return World.create(tmp_path / "state.json", clock=clock)


def names(result: Result) -> list[str]:
    assert result.code == 0, result
    return [i.name for i in parse_ifconfig(result.stdout)]


# --- reading -----------------------------------------------------------------------------


def test_ifconfig_lists_every_interface_in_kernel_order(world: World) -> None:
    expected = ["lo0", "em0", "em1", "em2", "enc0", "pfsync0", "carp0", "carp1"]
    assert names(world.ifconfig("A")) == expected
    assert names(world.ifconfig("A", "-a")) == expected
    assert names(world.ifconfig("A", "-A")) == expected


def test_ifconfig_name_group_and_prefix(world: World) -> None:
    assert names(world.ifconfig("A", "carp0")) == ["carp0"]
    assert names(world.ifconfig("A", "carp")) == ["pfsync0", "carp0", "carp1"]  # the group
    assert names(world.ifconfig("A", "pfsync")) == ["pfsync0"]
    assert names(world.ifconfig("A", "em")) == ["em0", "em1", "em2"]  # no group em: a prefix
    assert names(world.ifconfig("A", "egress")) == ["em0"]
    assert names(world.ifconfig("A", "carp0", "inet")) == ["carp0"]


def test_the_handbook_carp0_block_is_the_reference_sample(world: World) -> None:
    assert world.ifconfig("A", "carp0").stdout == (
        "carp0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
        "\tlladdr 00:00:5e:00:01:0a\n"
        "\tindex 7 priority 15 llprio 3\n"
        "\tcarp: MASTER carpdev em0 vhid 10 advbase 1 advskew 0\n"
        "\tgroups: carp\n"
        "\tstatus: master\n"
        "\tinet 203.0.113.1 netmask 0xfffffff8 broadcast 203.0.113.7\n"
    )
    assert world.ifconfig("B", "pfsync0").stdout == (
        "pfsync0: flags=41<UP,RUNNING> mtu 1500\n"
        "\tindex 6 priority 0 llprio 3\n"
        "\tpfsync: syncdev: em2 maxupd: 128 defer: off\n"
        "\tgroups: carp pfsync\n"
    )


def test_missing_interface(world: World) -> None:
    assert world.ifconfig("A", "carp9") == Result(1, "", "carp9: no such interface\n")
    assert world.ifconfig("A", "vlan") == Result(1, "", "vlan: no such interface\n")


def test_group_demote_count(world: World) -> None:
    assert world.ifconfig("A", "-g", "carp") == Result(0, "carp: carp demote count 0\n")
    assert parse_group(world.ifconfig("A", "-g", "pfsync").stdout) == ("pfsync", 0)
    assert world.ifconfig("A", "-g", "all").stdout == "all: carp demote count 0\n"


def test_missing_group_is_enoent(world: World) -> None:
    assert world.ifconfig("A", "-g", "nosuch") == Result(
        1, "", "ifconfig: nosuch: SIOCGIFGATTR: No such file or directory\n"
    )


def test_usage_and_long_names(world: World) -> None:
    usage = world.ifconfig("A", "-x")
    assert usage.code == 1
    assert usage.stderr.startswith("usage: ifconfig [-AaC] [-M lladdr] [interface]")
    assert world.ifconfig("A", "-g").code == 1
    assert world.ifconfig("A", "averyveryverylongname0") == Result(
        1, "", "ifconfig: interface name 'averyveryverylongname0' too long\n"
    )
    assert world.ifconfig("A", "-C") == Result(0, "carp enc lo pfsync\n")


# --- carpdemote ----------------------------------------------------------------------------


def test_carpdemote_default_one_and_explicit(world: World) -> None:
    assert world.ifconfig("A", "-g", "carp", "carpdemote") == Result(0)
    assert world.ifconfig("A", "-g", "carp", "carpdemote", "10") == Result(0)
    assert world.demote_count("A") == 11
    assert world.ifconfig("A", "-g", "carp", "-carpdemote", "11") == Result(0)
    assert world.ifconfig("A", "-g", "carp", "-carpdemote") == Result(
        1, "", "ifconfig: carp: SIOCSIFGATTR: Invalid argument\n"
    )
    assert world.demote_count("A") == 0


def test_carpdemote_argument_range(world: World) -> None:
    too_large = world.ifconfig("A", "-g", "carp", "carpdemote", "129")
    assert too_large == Result(1, "", "ifconfig: carp: invalid carp demotion: too large\n")
    invalid = world.ifconfig("A", "-g", "carp", "carpdemote", "x")
    assert invalid.stderr == "ifconfig: carp: invalid carp demotion: invalid\n"
    assert world.ifconfig("A", "-g", "carp", "carpdemote", "-1").stderr.endswith("too small\n")
    assert world.ifconfig("A", "-g", "carp", "demote").code == 1  # usage()


def test_carpdemote_total_above_255_is_einval(world: World) -> None:
    for _ in range(2):
        assert world.ifconfig("A", "-g", "carp", "carpdemote", "127").code == 0
    assert world.ifconfig("A", "-g", "carp", "carpdemote", "2") == Result(
        1, "", "ifconfig: carp: SIOCSIFGATTR: Invalid argument\n"
    )
    assert world.ifconfig("A", "-g", "carp", "carpdemote", "1") == Result(0)
    assert world.demote_count("A") == 255


def test_carpdemote_on_a_missing_group(world: World) -> None:
    assert world.ifconfig("A", "-g", "nosuch", "carpdemote") == Result(
        1, "", "ifconfig: nosuch: SIOCSIFGATTR: No such file or directory\n"
    )


# --- advskew and carpnodes -----------------------------------------------------------------


def test_advskew_range(world: World) -> None:
    assert world.ifconfig("A", "carp0", "advskew", "255") == Result(
        1, "", "ifconfig: advskew 255: too large\n"
    )
    assert world.ifconfig("A", "carp0", "advskew", "-1").stderr == (
        "ifconfig: advskew -1: too small\n"
    )
    assert world.ifconfig("A", "carp0", "advskew", "ten").stderr == (
        "ifconfig: advskew ten: invalid\n"
    )
    assert world.ifconfig("A", "carp0", "advskew").stderr == (
        "ifconfig: 'advskew' requires argument\n"
    )
    assert world.ifconfig("A", "carp0", "advskew", "254") == Result(0)


def test_advskew_on_a_non_carp_interface(world: World) -> None:
    assert world.ifconfig("A", "em0", "advskew", "5") == Result(
        1, "", "ifconfig: em0: SIOCGVH: Inappropriate ioctl for device\n"
    )


def test_advskew_changes_only_the_first_vhid(tmp_path: Path) -> None:
    world = World.create(tmp_path / "s.json", "multivhid")
    assert world.ifconfig("A", "carp2", "advskew", "50") == Result(0)
    carp2 = world.view("A").get("carp2")
    assert carp2 is not None
    assert carp2.carp is not None
    assert [(n.vhid, n.advskew) for n in carp2.carp.nodes] == [(1, 50), (2, 100)]


def test_carpnodes_sets_every_vhid(tmp_path: Path) -> None:
    world = World.create(tmp_path / "s.json", "multivhid")
    before = len(world.events())
    assert world.ifconfig("A", "carp2", "carpnodes", "1:100,2:0") == Result(0)
    carp2 = world.view("A").get("carp2")
    assert carp2 is not None
    assert carp2.carp is not None
    assert [(n.vhid, n.advskew, n.state) for n in carp2.carp.nodes] == [
        (1, 100, MASTER),  # B's vhid 1 has advskew 100 too: no faster, no preemption
        (2, 0, BACKUP),  # equal to B's vhid 2: preempt needs a strictly slower master
    ]
    # same vhids: no rebuild, so no INIT transitions
    assert not any(e.new == INIT for e in world.events()[before:])


def test_carpnodes_errors(world: World) -> None:
    assert world.ifconfig("A", "carp0", "carpnodes", "10").stderr == (
        "ifconfig: non parsable arg: 10\n"
    )
    assert world.ifconfig("A", "carp0", "carpnodes", "300:0").stderr == (
        "ifconfig: vhid 300: value too large\n"
    )
    assert world.ifconfig("A", "carp0", "carpnodes", "10:255").stderr == (
        "ifconfig: advskew 255: value too large\n"
    )


def test_carpnodes_duplicate_vhid_on_the_same_carpdev_is_einval(world: World) -> None:
    assert world.ifconfig("A", "carp1", "carpdev", "em0") == Result(0)
    assert world.ifconfig("A", "carp1", "carpnodes", "10:0") == Result(
        1, "", "ifconfig: carp1: SIOCSVH: Invalid argument\n"
    )


def test_a_new_vhid_list_restarts_from_init(world: World, clock: Clock) -> None:
    before = len(world.events())
    assert world.ifconfig("A", "carp0", "vhid", "11") == Result(0)
    clock.step()
    new = [
        (e.old, e.new)
        for e in world.events()[before:]
        if e.node == "A" and e.iface == "carp0" and e.kind == "carp"
    ]
    # carp_vhids_ioctl() destroys the old vhost (no log line) and starts a new one in INIT
    assert new == [(INIT, BACKUP), (BACKUP, MASTER)]
    assert world.state("A", "carp0") == MASTER  # B has no vhid 11 on em0: nobody to hear
    carp0 = world.view("A").get("carp0")
    assert carp0 is not None
    assert carp0.lladdr == "00:00:5e:00:01:0b"


# --- the creation trap ---------------------------------------------------------------------


def test_set_command_on_a_missing_carp_creates_it(world: World) -> None:
    assert world.ifconfig("A", "carp9") == Result(1, "", "carp9: no such interface\n")
    assert world.ifconfig("A", "carp9", "advskew", "240") == Result(0)
    out = world.ifconfig("A", "carp9")
    assert out.stdout == (
        "carp9: flags=8802<BROADCAST,SIMPLEX,MULTICAST> mtu 1500\n"
        "\tlladdr 00:00:00:00:00:00\n"
        "\tindex 9 priority 15 llprio 3\n"
        "\tgroups: carp\n"
        "\tstatus: invalid\n"
    )
    (carp9,) = parse_ifconfig(out.stdout)
    assert carp9.carp is None  # no vhid, no carp: line
    assert names(world.ifconfig("A", "carp"))[-1] == "carp9"  # it joined group carp
    assert world.state("A", "carp9") == INIT


def test_the_trap_is_not_sprung_without_root(world: World) -> None:
    world.set_fault("A", unprivileged=True)
    assert world.ifconfig("A", "carp9", "advskew", "240") == Result(
        1, "", "ifconfig: carp9: SIOCGVH: Device not configured\n"
    )
    assert world.ifconfig("A", "carp9").code == 1


def test_only_cloners_create(world: World) -> None:
    assert world.ifconfig("A", "em7", "advskew", "5") == Result(
        1, "", "ifconfig: em7: SIOCGVH: Device not configured\n"
    )
    assert world.ifconfig("A", "em7", "up") == Result(
        1, "", "ifconfig: em7: SIOCGIFFLAGS: Device not configured\n"
    )
    assert world.ifconfig("A", "em7").code == 1


def test_create_and_destroy(world: World) -> None:
    assert world.ifconfig("A", "carp5", "create") == Result(0)
    assert world.ifconfig("A", "carp5", "create") == Result(
        1, "", "ifconfig: carp5: SIOCIFCREATE: File exists\n"
    )
    assert world.ifconfig("A", "carp5", "destroy") == Result(0)
    assert world.ifconfig("A", "carp5").code == 1
    assert world.ifconfig("A", "em0", "destroy") == Result(
        1, "", "ifconfig: em0: SIOCIFDESTROY: Invalid argument\n"
    )


def test_destroying_a_suppressed_carp_gives_its_demote_back(world: World) -> None:
    world.set_link("A", "em0", up=False)
    assert world.demote_count("A") == 1
    assert world.ifconfig("A", "carp0", "destroy") == Result(0)
    assert world.demote_count("A") == 0


# --- root ----------------------------------------------------------------------------------


def test_set_commands_need_root(world: World) -> None:
    world.set_fault("A", unprivileged=True)
    assert world.ifconfig("A", "carp0", "advskew", "5") == Result(
        1, "", "ifconfig: carp0: SIOCSVH: Operation not permitted\n"
    )
    assert world.ifconfig("A", "carp2", "carpnodes", "1:0").code == 1
    assert world.ifconfig("A", "-g", "carp", "carpdemote", "5") == Result(
        1, "", "ifconfig: carp: SIOCSIFGATTR: Operation not permitted\n"
    )
    assert world.ifconfig("A", "em0", "down") == Result(
        1, "", "ifconfig: em0: SIOCSIFFLAGS: Operation not permitted\n"
    )
    # description uses warn(3): ifconfig goes on and exits 0
    assert world.ifconfig("A", "carp0", "description", "x") == Result(
        0, "", "ifconfig: SIOCSIFDESCR: Operation not permitted\n"
    )
    # reading needs no root
    assert world.ifconfig("A", "carp0").code == 0
    assert world.ifconfig("A", "-g", "carp").code == 0
    assert world.view("A").get("carp0") is not None
    assert world.state("A", "carp0") == MASTER
    assert world.demote_count("A") == 0


def test_an_error_half_way_keeps_what_was_done(world: World) -> None:
    result = world.ifconfig("A", "carp0", "advskew", "7", "advbase", "300")
    assert result == Result(1, "", "ifconfig: advbase 300: too large\n")
    carp0 = world.view("A").get("carp0")
    assert carp0 is not None
    assert carp0.carp is not None
    assert carp0.carp.nodes[0].advskew == 7


# --- other set commands --------------------------------------------------------------------


def test_description_pfsync_and_addresses(world: World) -> None:
    assert world.ifconfig("A", "carp0", "description", "WAN VIP") == Result(0)
    assert world.view("A").get("carp0").description == "WAN VIP"  # type: ignore[union-attr]
    assert world.ifconfig("A", "pfsync0", "maxupd", "64") == Result(0)  # while up: fine
    assert world.ifconfig("A", "pfsync0", "down", "syncpeer", "10.255.255.3") == Result(0)
    pfsync0 = world.view("A").get("pfsync0")
    assert pfsync0 is not None
    assert pfsync0.pfsync is not None
    assert (pfsync0.pfsync.syncpeer, pfsync0.pfsync.maxupd) == ("10.255.255.3", 64)
    assert world.ifconfig("A", "carp0", "maxupd", "1").stderr == (
        "ifconfig: carp0: SIOCGETPFSYNC: Inappropriate ioctl for device\n"
    )
    assert world.ifconfig("A", "carp0", "foo").stderr == "ifconfig: foo: bad value\n"
    assert world.ifconfig("A", "em1", "10.10.10.12", "netmask", "255.255.255.0", "alias") == (
        Result(0)
    )
    em1 = world.view("A").get("em1")
    assert em1 is not None
    assert em1.inet == (
        "10.10.10.2 netmask 0xffffff00 broadcast 10.10.10.255",
        "10.10.10.12 netmask 0xffffff00 broadcast 10.10.10.255",
    )


def test_carp_without_carpdev_refuses_an_address(world: World) -> None:
    world.ifconfig("A", "carp7", "create")
    assert world.ifconfig("A", "carp7", "inet", "192.0.2.1/24") == Result(
        1, "", "ifconfig: SIOCAIFADDR: Invalid argument\n"
    )


def test_build_a_carp_by_hand(world: World, clock: Clock) -> None:
    assert world.ifconfig("A", "carp7", "create") == Result(0)
    assert world.ifconfig("A", "carp7", "vhid", "30", "carpdev", "em1", "pass", "s") == Result(0)
    assert world.ifconfig("A", "carp7", "10.10.10.50/24") == Result(0)
    assert world.state("A", "carp7") == BACKUP
    clock.step(3.01)
    assert world.state("A", "carp7") == MASTER  # nobody else has vhid 30 on em1
    assert world.ifconfig("A", "carp7", "-10.10.10.50").code == 1
    assert world.ifconfig("A", "carp7", "10.10.10.50", "delete") == Result(0)
    assert world.state("A", "carp7") == INIT


# --- sysctl --------------------------------------------------------------------------------


def test_sysctl_read(world: World) -> None:
    out = world.sysctl("A", "net.inet.carp")
    assert out == Result(0, "net.inet.carp.allow=1\nnet.inet.carp.preempt=1\nnet.inet.carp.log=2\n")
    assert parse_sysctl(out.stdout) == {
        "net.inet.carp.allow": 1,
        "net.inet.carp.preempt": 1,
        "net.inet.carp.log": 2,
    }
    assert world.sysctl("A", "net.inet.carp.preempt") == Result(0, "net.inet.carp.preempt=1\n")
    assert world.sysctl("A", "-n", "net.inet.carp.log") == Result(0, "2\n")


def test_sysctl_write(world: World) -> None:
    assert world.sysctl("A", "net.inet.carp.preempt=0") == Result(
        0, "net.inet.carp.preempt: 1 -> 0\n"
    )
    assert world.sysctl("A", "-q", "net.inet.carp.preempt=1") == Result(0)
    assert world.view("A").sysctl["net.inet.carp.preempt"] == 1


def test_sysctl_errors_exit_zero_as_on_openbsd(world: World) -> None:
    assert world.sysctl("A", "net.inet.carp.demotion") == Result(
        0, "", "sysctl: fourth level name demotion in net.inet.carp.demotion is invalid\n"
    )
    assert world.sysctl("A", "net.inet.carp.preempt=yes") == Result(
        0, "", "sysctl: net.inet.carp.preempt: value is invalid: yes\n"
    )
    assert world.sysctl("A", "net.inet.carp.stats") == Result(
        0, "", "sysctl: use netstat to view net.inet.carp.stats information\n"
    )
    assert world.sysctl("A", "foo.bar") == Result(
        0, "", "sysctl: top level name foo in foo.bar is invalid\n"
    )
    world.set_fault("A", unprivileged=True)
    assert world.sysctl("A", "net.inet.carp.preempt=0") == Result(
        0, "", "sysctl: net.inet.carp.preempt: Operation not permitted\n"
    )
    usage = world.sysctl("A", "-z")
    assert usage.code == 1
    assert usage.stderr.endswith("usage: sysctl [-Aanq] [-f file] [name[=value] ...]\n")


def test_defaults_of_a_fresh_node(tmp_path: Path) -> None:
    spec = NodeSpec("A", "fw", (("em0", "192.0.2.2/24"),), sysctl={})
    world = World.create(tmp_path / "s.json", build_world(spec))
    assert world.view("A").sysctl == {
        "net.inet.carp.allow": 1,
        "net.inet.carp.preempt": 0,
        "net.inet.carp.log": 2,
    }
    assert world.view("A").group_demote == {"carp": 0}  # exists even with no carp interface
    assert world.ifconfig("A", "carp").stdout == ""  # an empty group prints nothing


def test_backup_state_line(world: World) -> None:
    (carp1,) = parse_ifconfig(world.ifconfig("B", "carp1").stdout)
    assert carp1.carp is not None
    assert carp1.carp.nodes[0].state == BACKUP
    assert carp1.status == "backup"


# --- pfsync as in OpenBSD 7.4 and later (if_pfsync.c r1.332) -------------------------------


def test_pfsync_down_gives_back_the_demotion_it_holds(world: World) -> None:
    """pfsync_down(): -1 for a syncdev without link ("pfsync down"); not RUNNING."""
    world.set_link("A", "em2", up=False)
    assert world.demote_count("A") == 1
    assert world.ifconfig("A", "pfsync0", "down") == Result(0)
    assert world.demote_count("A") == 0
    assert world.ifconfig("A", "pfsync0").stdout.startswith("pfsync0: flags=0<> mtu 1500\n")


def test_pfsync_up_without_syncdev_is_enxio_and_leaves_the_flags(world: World) -> None:
    """pfsync_up(): no sync interface, ENXIO; ifioctl() puts the old flags back."""
    assert world.ifconfig("A", "pfsync0", "down", "-syncdev") == Result(0)
    assert world.ifconfig("A", "pfsync0", "up") == Result(
        1, "", "ifconfig: pfsync0: SIOCSIFFLAGS: Device not configured\n"
    )
    assert world.ifconfig("A", "pfsync0").stdout.startswith("pfsync0: flags=0<>")
    assert world.demote_count("A") == 0


def test_pfsync_syncdev_or_syncpeer_change_while_up_is_ebusy(world: World) -> None:
    """pfsync_set_ioc(): a new syncdev or syncpeer while RUNNING, EBUSY; the same one is fine."""
    busy = "ifconfig: pfsync0: SIOCSETPFSYNC: Device busy\n"
    assert world.ifconfig("A", "pfsync0", "syncdev", "em1") == Result(1, "", busy)
    assert world.ifconfig("A", "pfsync0", "syncpeer", "10.0.0.9") == Result(1, "", busy)
    assert world.ifconfig("A", "pfsync0", "-syncdev") == Result(1, "", busy)
    assert world.ifconfig("A", "pfsync0", "syncdev", "em2") == Result(0)
    assert world.ifconfig("A", "pfsync0", "down", "syncdev", "em1", "up") == Result(0)


def test_pfsync_enxio_for_a_second_pfsync_and_a_missing_syncdev(world: World) -> None:
    """pfsync_clone_create(): unit != 0 is ENXIO; pfsync_set_ioc(): if_unit() NULL, ENXIO."""
    assert world.ifconfig("A", "pfsync1", "create") == Result(
        1, "", "ifconfig: pfsync1: SIOCIFCREATE: Device not configured\n"
    )
    assert world.ifconfig("A", "pfsync0", "down") == Result(0)
    assert world.ifconfig("A", "pfsync0", "syncdev", "em9") == Result(
        1, "", "ifconfig: pfsync0: SIOCSETPFSYNC: Device not configured\n"
    )


def test_pfsync_up_holds_32_until_the_bulk_update_is_done(world: World, clock: Clock) -> None:
    """pfsync_up() and pfsync_bulk_req_evt(): +1 "pfsync up", +32 "pfsync start", -1 "pfsync
    link" (syncdev has link: the request goes out), -32 "pfsync done" when the peer's bulk
    update arrives."""
    assert world.ifconfig("A", "pfsync0", "down") == Result(0)
    assert world.ifconfig("A", "pfsync0", "up") == Result(0)
    assert world.demote_count("A") == 32
    clock.step(0.2)
    assert world.demote_count("A") == 0
    reasons = [e.text.rsplit("(", 1)[1] for e in world.events() if e.group == "carp"][-4:]
    assert reasons == ["pfsync up)", "pfsync start)", "pfsync link)", "pfsync done)"]


def test_pfsync_bulk_gives_up_without_a_peer(world: World, clock: Clock) -> None:
    """pfsync_bulk_req_evt(): SENT, 2 s per try, PFSYNC_MAX_BULKTRIES (12) tries, then done;
    the +32 is carried meanwhile, beside carpd-py's own share of the counter."""
    world.ifconfig("B", "pfsync0", "down")
    world.ifconfig("A", "pfsync0", "down")
    world.ifconfig("A", "-g", "carp", "carpdemote", "5")  # an admin's (or carpd-py's) share
    world.ifconfig("A", "pfsync0", "up")
    assert world.demote_count("A") == 37
    clock.step(23.9)
    assert world.demote_count("A") == 37
    clock.step(0.2)
    assert world.demote_count("A") == 5


def test_pfsync_waits_30s_for_the_syncdev_link(world: World, clock: Clock) -> None:
    """pfsync_bulk_req_evt(START): no link, the request waits; the link comes, it goes out."""
    world.ifconfig("A", "pfsync0", "down")
    world.set_link("A", "em2", up=False)
    world.ifconfig("A", "pfsync0", "up")
    assert world.demote_count("A") == 33  # +1 no link, +32 bulk
    clock.step(10)
    world.set_link("A", "em2", up=True)
    assert world.demote_count("A") == 32
    clock.step(0.2)
    assert world.demote_count("A") == 0


# --- the smaller mismatches ------------------------------------------------------------------


def test_plain_ifconfig_shows_the_first_inet_only(world: World) -> None:
    """printif(NULL, 0) for `ifconfig` and `-a` (noinet: first AF_INET only), printif(NULL, 1)
    for `-A`, printif(&ifr, 1) for a name."""
    assert world.ifconfig("A", "em1", "10.10.10.12/24", "alias") == Result(0)
    second = "\tinet 10.10.10.12 netmask 0xffffff00 broadcast 10.10.10.255\n"
    assert second not in world.ifconfig("A").stdout
    assert second not in world.ifconfig("A", "-a").stdout
    assert second in world.ifconfig("A", "-A").stdout
    assert second in world.ifconfig("A", "em1").stdout
    assert "\tinet6 ::1 prefixlen 128\n" in world.ifconfig("A").stdout


def test_carpnodes_needs_the_colon_right_after_the_vhid(world: World) -> None:
    """setcarp_nodes(): sscanf(str, "%u:%u") must convert both."""
    assert world.ifconfig("A", "carp0", "carpnodes", "1x:2") == Result(
        1, "", "ifconfig: non parsable arg: 1x:2\n"
    )
    assert world.ifconfig("A", "carp0", "carpnodes", "1 :2").code == 1


def test_a_group_the_interface_has_is_no_error(world: World) -> None:
    """setifgroup(): SIOCAIFGROUP's EEXIST is ignored."""
    assert world.ifconfig("A", "em0", "group", "egress") == Result(0)
    assert world.ifconfig("A", "em0", "group", "wan") == Result(0)
    assert world.ifconfig("A", "em0", "group", "wan") == Result(0)


def test_a_description_with_a_newline_does_not_spoil_the_read(world: World) -> None:
    """setifdesc() stores the text as given and status() prints it raw: a newline in it
    starts a line that is no interface header; the rest of the output still parses."""
    assert world.ifconfig("A", "carp0", "description", "WAN VIP\nsee ticket 42") == Result(0)
    out = world.ifconfig("A").stdout
    assert "\tdescription: WAN VIP\nsee ticket 42\n" in out
    interfaces = parse_ifconfig(out)
    assert [i.name for i in interfaces][-2:] == ["carp0", "carp1"]
    carp0 = next(i for i in interfaces if i.name == "carp0")
    assert carp0.description == "WAN VIP\nsee ticket 42"
    assert carp0.carp is not None
    assert carp0.carp.nodes[0].state == "MASTER"
