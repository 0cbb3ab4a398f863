"""End to end: `[[upstream]] method = "relayd"` and the daemon's [verify] checks, with real
carpd-py processes on the simulated pair (relayctl and pfctl are the simulator's, printing
what relayctl.c show_summary_msg() and pfctl_parser.c print_rule()/print_status() print).
Where both daemons run, they decide together and exchange their verify reports over real UDP
([peer], `Harness.pair_up`)."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from carpd_py.sim import services
from carpd_py.sim.harness import Harness, wait_until

WAIT = 20.0
BACKENDS = ("10.10.10.11", "10.10.10.12")
RELAYD = {"upstream": [{"name": "www", "method": "relayd", "relay": "www", "min_up": 1,
                        "timeout": 1.0, "fall": 2, "rise": 2}]}  # fmt: skip


def masters(h: Harness) -> dict[str, list[str]]:
    return {n: sorted(i for i, s in h.roles(n).items() if s == "MASTER") for n in h.nodes}


def backends(h: Harness, node: str, up: bool) -> None:
    services.set_relayd(h.world.path, node, hosts_up=dict.fromkeys(BACKENDS, up))


def start_pair(h: Harness, **over: Any) -> None:
    """Both daemons with a [peer] table and `over`; back when each has heard the other."""
    h.pair_up()
    for name in h.nodes:
        h.configure(name, **over)
        h.start(name)
    for name in h.nodes:
        log = h.nodes[name].log
        wait_until(lambda: "managing carp1" in log(), WAIT, f"{name} manages carp1")  # noqa: B023
        wait_until(lambda: "peer up: deciding together" in log(), WAIT, f"{name} hears B")  # noqa: B023
    wait_until(lambda: masters(h) == {"A": ["carp0", "carp1"], "B": []}, WAIT, "A MASTER")


def test_backends_down_on_a_only_move_the_vip_to_b_and_back(pair: Harness) -> None:
    start_pair(pair, **RELAYD, verify={"interval": 0.5})

    backends(pair, "A", up=False)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
    wait_until(lambda: masters(pair) == {"A": [], "B": ["carp0", "carp1"]}, WAIT, "VIPs on B")
    assert pair.advskews("B") == {"carp0": 100, "carp1": 100}
    assert "0/2 hosts up in relay www" in pair.carpctl("A", "status").stdout

    backends(pair, "A", up=True)
    wait_until(lambda: masters(pair)["A"] == ["carp0", "carp1"], WAIT, "A MASTER again")
    assert "notice  demoting reasons=upstream:www" in pair.nodes["A"].log()

    # Two failovers while both daemons ran the pair's checks every 0.5 s: a vhid MASTER on
    # both or on none for a moment is carp at work. The second run (verifier.CONFIRM, on
    # MockClock in test_verifier.py) keeps it out of the log on an idle machine; on a loaded
    # one the two nodes' reads can still be seconds apart, so what is asserted here is that no
    # such failure outlives the failover: every one_master failure logged is followed by
    # "passes again".
    def settled(name: str) -> bool:
        lines = [ln for ln in pair.nodes[name].log().splitlines() if "check=one_master" in ln]
        return not lines or "passes again" in lines[-1]

    for name in pair.nodes:
        wait_until(functools.partial(settled, name), WAIT, f"{name}: one_master not failing")


def test_relayd_not_answering_is_a_bad_round(pair: Harness) -> None:
    pair.configure("A", **RELAYD)
    pair.start("A")
    wait_until(lambda: "managing carp1" in pair.nodes["A"].log(), WAIT, "A manages carp1")
    services.set_relayd(pair.world.path, "A", running=False)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
    status = pair.carpctl("A", "status").stdout
    assert "relayctl: connect: /var/run/relayd.sock: No such file or directory" in status


def test_backends_down_on_both_move_nothing(pair: Harness) -> None:
    start_pair(pair, **RELAYD)
    backends(pair, "A", up=False)
    backends(pair, "B", up=False)
    # The peer is no healthier: neither node demotes, so the VIP stays on A; both say why.
    for name in pair.nodes:
        log = pair.nodes[name].log
        wait_until(lambda: "notice  upstream:www lost on both nodes: failover would not help"
                   in log(), WAIT, f"{name} withholds")  # noqa: B023  # fmt: skip
    moved = lambda: (masters(pair) != {"A": ["carp0", "carp1"], "B": []}  # noqa: E731
                     or pair.advskews("A") != {"carp0": 0, "carp1": 0}
                     or pair.advskews("B") != {"carp0": 100, "carp1": 100})  # fmt: skip
    with pytest.raises(TimeoutError):
        wait_until(moved, 5.0, "a node demotes or a VIP moves")
    assert "demoting" not in pair.nodes["A"].log() + pair.nodes["B"].log()
    assert pair.status("A")["pair"]["withheld"] == ["upstream:www"]


def test_the_daemon_runs_the_checks_and_shows_failures_in_status(pair: Harness) -> None:
    pair.configure("A", verify={"interval": 0.5})
    pair.start("A")
    wait_until(lambda: "verify:" in pair.carpctl("A", "status").stdout, WAIT, "checks ran")
    services.set_pf(pair.world.path, "A", remove_rule="pass on em0 proto carp all")
    wait_until(lambda: "pf_rules: failure" in pair.carpctl("A", "status").stdout, WAIT,
               "status shows the pf_rules failure")  # fmt: skip
    doc = json.loads(pair.carpctl("A", "status", "--json").stdout)
    assert doc["verify"]["result"] == "failure"
    assert "notice  verify: check failed check=pf_rules" in pair.nodes["A"].log()
    done = pair.carpctl("A", "verify", "--json")
    assert done.returncode == 1
    checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    assert "no `pass on em0 proto carp`" in checks["pf_rules"]["nodes"]["A"]
    assert checks["demote_stuck"]["nodes"]["A"].endswith("carpd-py's share 0")


def verify_json(h: Harness, node: str) -> tuple[int, dict[str, dict[str, Any]]]:
    done = h.carpctl(node, "verify", "--json")
    return done.returncode, {c["check"]: c for c in json.loads(done.stdout)["checks"]}


PAIR_CHECKS = ("one_master", "same_vhids", "rules_match", "states")


def test_verify_sees_both_nodes_over_the_pair_channel(pair: Harness) -> None:
    """The daemons exchange their reports (the "verify" section of their messages): carpctl
    verify on A checks both nodes; a ruleset loaded on B alone is a rules_match failure."""
    start_pair(pair, verify={"interval": 0.5})

    def pair_checked() -> bool:
        _, checks = verify_json(pair, "A")
        return all(set(checks[c]["nodes"]) == {"A", "B"} for c in PAIR_CHECKS)

    wait_until(pair_checked, WAIT, "verify on A sees B", step=0.3)
    code, checks = verify_json(pair, "A")
    assert code == 0
    for name in PAIR_CHECKS:
        assert checks[name]["result"] == "ok", checks[name]
    assert checks["one_master"]["nodes"]["B"] == "carp0 vhid 10 BACKUP, carp1 vhid 20 BACKUP"
    digests = {n: seen.split("digest ")[1] for n, seen in checks["rules_match"]["nodes"].items()}
    assert digests["A"] == digests["B"]
    assert checks["states"]["nodes"] == {"A": "120 states", "B": "120 states"}

    services.set_pf(pair.world.path, "B", add_rule="pass in on em0 proto tcp to port 22")
    wait_until(lambda: verify_json(pair, "A")[1]["rules_match"]["result"] == "failure", WAIT,
               "A's verify sees B's other ruleset", step=0.3)  # fmt: skip
    code, checks = verify_json(pair, "A")
    assert code == 1
    assert checks["rules_match"]["nodes"]["B"].endswith("(the rulesets differ)")
    assert "rules are not" in checks["rules_match"]["fix"]
    for name in pair.nodes:  # each daemon too, once a second run a moment later confirms it
        log = pair.nodes[name].log
        wait_until(lambda: "notice  verify: check failed check=rules_match" in log(),  # noqa: B023
                   WAIT, f"{name} logs the failure")  # fmt: skip
