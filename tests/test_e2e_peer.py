"""End to end: two real carpd-py daemons on the simulated pair, deciding together over real
UDP (through a relay per direction, which a test can block), with a key file each.

Every wait has a deadline and none assumes an election is instant: roles are waited for.
"Nothing moves" is checked over several of the daemons' intervals and peer timeouts.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from carpd_py.sim.harness import Harness, wait_until

WAIT = 20.0
QUIET = 2.5  # seconds that "nothing moves" is watched: > 10 rounds and 2 peer timeouts
TEST = "/usr/bin/test"
BOTH = {"carp0", "carp1"}


def masters(h: Harness) -> dict[str, set[str]]:
    return {n: {i for i, s in h.roles(n).items() if s == "MASTER"} for n in h.nodes}


def stays(h: Harness, predicate: Callable[[], bool], seconds: float = QUIET) -> None:
    """`predicate` holds now and for `seconds` (polled)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert predicate(), "changed while it should not have"
        time.sleep(0.05)


def upstream(flag: Path) -> dict[str, Any]:
    """An upstream group that is good while `flag` exists (a gateway that answers)."""
    return {"name": "isp", "method": "exec", "command": [TEST, "-e", str(flag)],
            "timeout": 1.0, "fall": 2, "rise": 2}  # fmt: skip


def start(h: Harness) -> None:
    for name in h.nodes:
        h.start(name)
    for name in h.nodes:
        logged(h, name, "managing carp1")
    wait_until(lambda: masters(h) == {"A": BOTH, "B": set()}, WAIT, "A MASTER of both")


def logged(h: Harness, name: str, line: str, times: int = 1) -> None:
    """Wait until the daemon on `name` has logged `line` (`times` times)."""
    log = h.nodes[name].log
    wait_until(lambda: log().count(line) >= times, WAIT, f"{name} logs {line!r}")


def peers_up(h: Harness, times: int = 1) -> None:
    """Both daemons have logged the peer up (`times` times)."""
    line = "notice  peer up: deciding together"
    for name in h.nodes:
        logged(h, name, line, times)


def status_is(h: Harness, name: str, predicate: Callable[[dict[str, Any]], bool]) -> None:
    """Wait until `carpctl status --json` of `name` satisfies `predicate` (each poll runs
    carpctl: a process, so not too often)."""
    wait_until(lambda: predicate(h.status(name)), WAIT, f"{name}'s status", step=0.3)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path / "pair", topology="handbook")
    harness.pair_up()
    try:
        yield harness
    finally:
        harness.stop_all()


def untouched(h: Harness) -> bool:
    return (
        masters(h) == {"A": BOTH, "B": set()}
        and h.advskews("A") == {"carp0": 0, "carp1": 0}
        and h.advskews("B") == {"carp0": 100, "carp1": 100}
    )


def test_the_direct_sync_cable_pulled_moves_nothing_and_both_say_why(pair: Harness) -> None:
    start(pair)
    peers_up(pair)
    pair.world.set_link("A", "em2", up=False)  # one cable, both ends lose carrier
    pair.world.set_link("B", "em2", up=False)
    notice = "notice  sync lost on both nodes: failover would not help"
    for name in pair.nodes:
        logged(pair, name, notice)
    stays(pair, lambda: untouched(pair))
    for name in pair.nodes:
        doc = pair.status(name)
        assert doc["pair"]["withheld"] == ["sync"]
        assert doc["demoted"] is False
        assert doc["peer"]["reasons"] == ["sync"]
        assert pair.nodes[name].log().count(notice) == 1  # once per withholding
    # plugged back: the checks recover, nothing moved, nothing to undo
    pair.world.set_link("A", "em2", up=True)
    pair.world.set_link("B", "em2", up=True)
    status_is(pair, "A", lambda doc: doc["pair"]["withheld"] == [])
    assert untouched(pair)
    assert "demoting" not in pair.nodes["A"].log() + pair.nodes["B"].log()


def test_one_sync_port_on_a_switch_moves_the_vips_to_b(pair: Harness) -> None:
    start(pair)
    peers_up(pair)
    pair.world.set_link("A", "em2", up=False)  # A's port only: B's link stays up
    # (A's kernel adds 1 to its demote counter at once, carpd-py's advskew follows)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
    wait_until(lambda: masters(pair) == {"A": set(), "B": BOTH}, WAIT, "B MASTER of both")
    assert pair.advskews("B") == {"carp0": 100, "carp1": 100}
    assert "notice  demoting reasons=sync" in pair.nodes["A"].log()
    assert pair.status("B")["peer"]["demoted"] is True


def test_a_upstream_lost_b_takes_over_and_gives_back(pair: Harness, tmp_path: Path) -> None:
    flags = {n: tmp_path / f"isp-{n}" for n in pair.nodes}
    for name, flag in flags.items():
        flag.touch()
        pair.configure(name, upstream=[upstream(flag)])
    start(pair)
    peers_up(pair)
    flags["A"].unlink()
    wait_until(lambda: masters(pair) == {"A": set(), "B": BOTH}, WAIT, "B MASTER of both")
    assert "notice  demoting reasons=upstream:isp" in pair.nodes["A"].log()
    assert "demoting" not in pair.nodes["B"].log()
    flags["A"].touch()
    wait_until(lambda: masters(pair) == {"A": BOTH, "B": set()}, WAIT, "A MASTER again")


def test_a_shared_upstream_outage_moves_nothing(pair: Harness, tmp_path: Path) -> None:
    flag = tmp_path / "isp"  # one ISP, one upstream router: both nodes probe the same
    flag.touch()
    for name in pair.nodes:
        pair.configure(name, upstream=[upstream(flag)])
    start(pair)
    peers_up(pair)
    flag.unlink()
    notice = "notice  upstream:isp lost on both nodes: failover would not help"
    for name in pair.nodes:
        logged(pair, name, notice)
    stays(pair, lambda: untouched(pair))
    assert pair.status("A")["pair"]["withheld"] == ["upstream:isp"]


def test_the_peers_daemon_killed_this_node_decides_alone(pair: Harness) -> None:
    start(pair)
    peers_up(pair)
    pair.stop("B", signal.SIGKILL)
    status_is(pair, "A", lambda doc: doc["peer"]["state"] == "unknown")
    assert "warning peer lost: deciding alone" in pair.nodes["A"].log()
    pair.world.set_link("A", "em2", up=False)
    pair.world.set_link("B", "em2", up=False)
    # alone, as today: A demotes for sync; B's kernel takes the VIPs
    wait_until(lambda: masters(pair) == {"A": set(), "B": BOTH}, WAIT, "B MASTER of both")
    assert "notice  demoting reasons=sync" in pair.nodes["A"].log()


def test_a_wrong_key_is_rejected_and_each_decides_alone(tmp_path: Path) -> None:
    h = Harness(tmp_path / "pair", topology="handbook")
    h.pair_up(keys={"A": b"a" * 32, "B": b"b" * 32})
    try:
        start(h)
        for name in h.nodes:
            status_is(h, name, lambda doc: doc["peer"]["state"] == "rejected")
        assert "warning peer message dropped why=auth" in h.nodes["A"].log()
        assert "warning peer messages rejected: deciding alone" in h.nodes["B"].log()
        h.world.set_link("A", "em2", up=False)
        h.world.set_link("B", "em2", up=False)
        for name in h.nodes:  # alone: both demote, as without [peer]
            status_is(h, name, lambda doc: doc.get("demoted") is True)
    finally:
        h.stop_all()


def test_a_blocked_channel_means_alone_and_back_together_when_it_opens(pair: Harness) -> None:
    start(pair)
    peers_up(pair)
    for relay in pair.relays.values():
        relay.blocked = True
    for name in pair.nodes:
        status_is(pair, name, lambda doc: doc["peer"]["state"] == "unknown")
    assert "warning peer lost: deciding alone" in pair.nodes["A"].log()
    for relay in pair.relays.values():
        relay.blocked = False
    peers_up(pair, times=2)
    assert "notice  peer up: deciding together" in pair.nodes["A"].log()


def test_both_in_maintenance_the_vips_stay_together(pair: Harness) -> None:
    start(pair)
    peers_up(pair)
    assert pair.carpctl("A", "maintenance", "on").returncode == 0
    wait_until(lambda: masters(pair) == {"A": set(), "B": BOTH}, WAIT, "B MASTER of both")
    assert pair.carpctl("B", "maintenance", "on").returncode == 0
    warning = "warning maintenance demotes this node although the peer is no healthier"
    wait_until(lambda: warning in pair.nodes["B"].log(), WAIT, "B warns")
    # both demoted to 240: A (no VIP) goes one step further, so none moves back to A
    wait_until(lambda: pair.advskews("A") == {"carp0": 241, "carp1": 241}, WAIT, "A deeper")
    stays(pair, lambda: masters(pair) == {"A": set(), "B": BOTH})
    assert pair.advskews("B") == {"carp0": 240, "carp1": 240}
    assert pair.status("A")["pair"]["deeper"] is True
    assert pair.status("B")["pair"]["deeper"] is False


def test_split_brain_is_seen_by_both_daemons(pair: Harness) -> None:
    start(pair)
    peers_up(pair)
    pair.world.sysctl_set("B", "net.inet.carp.allow", 0)  # B stops hearing A's advertisements
    wait_until(lambda: masters(pair)["B"] == BOTH, WAIT, "B MASTER too")
    line = "error   split brain: MASTER on both nodes vhids=10,20"
    for name in pair.nodes:
        logged(pair, name, line)
        assert pair.status(name)["pair"]["split_brain"] == [10, 20]
    pair.world.sysctl_set("B", "net.inet.carp.allow", 1)
    wait_until(lambda: "notice  split brain over" in pair.nodes["A"].log(), WAIT, "over")
