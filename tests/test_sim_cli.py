"""`carpd-sim`, the command line of the simulated host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carpd_py.parse import parse_ifconfig
from carpd_py.sim.cli import main
from carpd_py.sim.state import MASTER
from carpd_py.sim.world import World


@pytest.fixture
def state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = str(tmp_path / "state.json")
    assert main(["--state", path, "create", "--topology", "handbook"]) == 0
    assert "A, B (handbook)" in capsys.readouterr().out
    return path


def test_show_prints_ifconfig(state: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--state", state, "show", "B"]) == 0
    assert parse_ifconfig(capsys.readouterr().out) == World(state).view("B").interfaces


def test_link_and_events(state: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--state", state, "link", "A", "em2", "down"]) == 0
    assert World(state).state("B", "carp0") == MASTER
    assert main(["--state", state, "events"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].endswith(" fw1 /bsd: carp1: state transition: MASTER -> BACKUP")
    assert all("/bsd: " in line for line in lines)
    assert main(["--state", state, "events", "--all"]) == 0
    everything = capsys.readouterr().out
    assert "[not logged: net.inet.carp.log < 3]" in everything  # the demote lines
    assert "carp: pfsync0 demoted group carp by 1 to 1 (pfsync link)" in everything
    assert main(["--state", state, "events", "--json"]) == 0
    kinds = {json.loads(line)["kind"] for line in capsys.readouterr().out.splitlines()}
    assert kinds == {"carp", "demote", "link"}


def test_tick_prints_what_happens_with_its_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """carp_master_down() after the master-down time: `tick` advances the world by itself."""
    path = str(tmp_path / "fast.json")
    assert main(["--state", path, "create", "--timescale", "100"]) == 0
    assert World(path).read().timescale == 100
    assert main(["--state", path, "link", "A", "em0", "down"]) == 0
    capsys.readouterr()
    assert main(["--state", path, "tick", "--interval", "0.01", "--for", "0.5", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    took = [e for e in events if e["kind"] == "carp" and e["node"] == "B" and e["new"] == MASTER]
    assert [e["iface"] for e in took] == ["carp0"]


def test_sysctl_and_fault(state: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--state", state, "sysctl", "A", "net.inet.carp.preempt=0"]) == 0
    assert capsys.readouterr().out == "net.inet.carp.preempt: 1 -> 0\n"
    assert main(["--state", state, "fault", "A", "--unprivileged", "on", "--hang", "0"]) == 0
    assert World(state).read().node("A").unprivileged
    assert main(["--state", state, "sysctl", "A", "net.inet.carp.bogus=1"]) == 1
    assert "no sysctl net.inet.carp.bogus" in capsys.readouterr().err


def test_run_and_install_bin(
    state: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--state", state, "run", "A", "ifconfig", "carp0", "advskew", "200"]) == 0
    assert World(state).read().node("A").get("carp0").carp.vhosts[0].advskew == 200  # type: ignore[union-attr]
    assert World(state).state("A", "carp0") == MASTER  # until its next advertisement
    assert main(["--state", state, "run", "A", "ifconfig", "carp9"]) == 1
    assert capsys.readouterr().err == "carp9: no such interface\n"
    assert main(["--state", state, "install-bin", "B", str(tmp_path / "bin")]) == 0
    assert capsys.readouterr().out.split() == [
        str(tmp_path / "bin" / "ifconfig"),
        str(tmp_path / "bin" / "sysctl"),
    ]


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "none.json")
    assert main(["--state", missing, "show", "A"]) == 1
    assert "no such simulated world" in capsys.readouterr().err
    assert main(["--state", missing, "create", "--topology", "nope"]) == 1
    assert "unknown topology 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["show", "A"])  # no --state and no CARPD_SIM_STATE
