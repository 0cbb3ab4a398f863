"""The simulator's pfctl and relayctl print what OpenBSD's print: each format pinned to the
function that prints it, and read back by pfparse/relayparse into the model."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from carpd_py.pfparse import parse_ifaces, parse_info, parse_rules
from carpd_py.relayparse import HEADER, hosts_up, parse_listen, parse_summary
from carpd_py.sim import services
from carpd_py.sim.world import World


@pytest.fixture
def node(tmp_path: Path) -> tuple[World, Path]:
    world = World.create(tmp_path / "world.json")
    world.install_bin(tmp_path / "bin", "A")
    return world, tmp_path / "bin"


def run(bindir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bindir / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip


def test_pfctl_si_is_print_status(node: tuple[World, Path]) -> None:
    """pfctl_parser.c print_status(): "%-44s" status, "%15s\\n\\n" debug level, the State
    Table with `current entries` and `half-open tcp`."""
    world, bindir = node
    services.set_pf(world.path, "A", states=4711)
    with services.modify(world.path) as model:
        model["A"]["pf"]["since"] -= 3 * 86400 + 3723  # enabled 3 days 01:02:03 ago
    out = run(bindir, "pfctl", "-si").stdout
    first, blank, table, entries, halfopen = out.splitlines()[:5]
    assert first.startswith(f"{'Status: Enabled for 3 days 01:02:0':<34}")
    assert len(first) == 44 + 15
    assert first.endswith("Debug: err")
    assert blank == ""
    assert table == f"{'State Table':<27} {'Total':>14} {'Rate':>16}"
    assert entries == f"  {'current entries':<25} {4711:>14} {'':>14}"
    assert halfopen.startswith("  half-open tcp ")
    assert parse_info(out).states == 4711
    services.set_pf(world.path, "A", enabled=False)
    assert run(bindir, "pfctl", "-s", "info").stdout.startswith(f"{'Status: Disabled':<44}")


def test_pfctl_sr_is_print_rule_with_its_counters(node: tuple[World, Path]) -> None:
    """print_rule() one rule a line; -v adds pfctl_print_rule_counters(); -vv the `@N `."""
    world, bindir = node
    rules = services.read_model(world.path)["A"]["pf"]["rules"]
    assert run(bindir, "pfctl", "-sr").stdout == "".join(f"{r}\n" for r in rules)
    verbose = run(bindir, "pfctl", "-vsr").stdout.splitlines()
    assert verbose[1].startswith("  [ Evaluations: 0         Packets: 0         Bytes: 0 ")
    assert verbose[2].startswith("  [ Inserted: uid ")
    assert run(bindir, "pfctl", "-vvsr").stdout.startswith(f"@0 {rules[0]}\n")
    for args in (("-sr",), ("-vsr",), ("-vvsr",), ("-s", "rules")):
        assert [r.text for r in parse_rules(run(bindir, "pfctl", *args).stdout)] == rules


def test_pfctl_si_v_is_print_iface(node: tuple[World, Path]) -> None:
    """pfctl_table.c print_iface(): names sorted, ` (skip)` only with -v."""
    _, bindir = node
    plain = run(bindir, "pfctl", "-sI").stdout
    assert "(skip)" not in plain
    skips = parse_ifaces(run(bindir, "pfctl", "-sI", "-v").stdout)
    assert skips["pfsync0"]
    assert skips["lo0"]
    assert not skips["em2"]
    assert not skips["all"]
    assert list(skips) == sorted(skips)


def test_pfctl_usage_errors(node: tuple[World, Path]) -> None:
    _, bindir = node
    bad = run(bindir, "pfctl", "-s", "bogus")
    assert bad.returncode == 1
    assert bad.stderr.startswith("pfctl: Unknown show modifier 'bogus'\nusage: pfctl")
    assert run(bindir, "pfctl").returncode == 1


def test_relayctl_show_summary_and_hosts(node: tuple[World, Path]) -> None:
    """relayctl.c main()'s header, show_summary_msg()'s `%-4u\\t%-8s\\t%-24s\\t%-7s\\t%s`."""
    world, bindir = node
    services.set_relayd(world.path, "A", hosts_up={"10.10.10.12": False})
    summary = run(bindir, "relayctl", "show", "summary").stdout
    lines = summary.splitlines()
    assert lines[0] == HEADER
    assert lines[1] == f"{1:<4}\t{'relay':<8}\t{'www':<24}\t{'':<7}\tactive"
    assert lines[2] == f"{1:<4}\t{'table':<8}\t{'web_backends:80':<24}\t{'':<7}\tactive (1 hosts)"
    assert lines[4] == f"{2:<4}\t{'host':<8}\t{'10.10.10.12':<24}\t{'0.00%':<7}\tdown"
    assert hosts_up(parse_summary(summary), relay="www") == (1, 2)
    hosts = run(bindir, "relayctl", "show", "hosts").stdout
    assert "relay" not in hosts.split("\n", 1)[1]
    assert "\ttotal: 0/10 checks, error: tcp connect failed\n" in hosts
    assert hosts_up(parse_summary(hosts), table="web_backends") == (1, 2)
    conf = (bindir / "relayd.conf").read_text()
    assert parse_listen(conf) == {"www": ("10.10.10.1",)}


def test_relayctl_when_relayd_is_not_running(node: tuple[World, Path]) -> None:
    """relayctl.c main(): err(1, "connect: %s", RELAYD_SOCKET)."""
    world, bindir = node
    services.set_relayd(world.path, "A", running=False)
    done = run(bindir, "relayctl", "show", "summary")
    assert done.returncode == 1
    assert done.stderr == "relayctl: connect: /var/run/relayd.sock: No such file or directory\n"


def test_carpd_sim_pf_and_relayd(node: tuple[World, Path]) -> None:
    world, _ = node
    sim = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "carpd-sim"
    base = [str(sim), "--state", str(world.path)]
    done = subprocess.run([*base, "pf", "A", "--remove-rule", "pass on em2 proto pfsync all"],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pass on em2 proto pfsync all" not in services.read_model(world.path)["A"]["pf"]["rules"]
    done = subprocess.run([*base, "relayd", "A", "--host", "10.10.10.11", "down"],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    hosts = services.read_model(world.path)["A"]["relayd"]["relays"][0]["hosts"]
    assert [h["up"] for h in hosts] == [False, True]
    bad = subprocess.run([*base, "pf", "A", "--remove-rule", "nope"], capture_output=True,
                         text=True, timeout=30, check=False)  # fmt: skip
    assert bad.returncode == 1
    assert "no loaded rule 'nope'" in bad.stderr
