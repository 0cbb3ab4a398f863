"""End to end: real carpd-py processes on the simulated pair, through the real host adapter.

The daemons run the real `ifconfig`/`sysctl` command lines against the simulated OpenBSD
host; the election between the two nodes follows the kernel's rules (preempt on).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from carpd_py.sim.harness import Harness, wait_until

WAIT = 20.0  # seconds; the daemons poll every 0.2 s, so anything here takes about 1-3 s


def masters(h: Harness) -> dict[str, list[str]]:
    return {n: sorted(i for i, s in h.roles(n).items() if s == "MASTER") for n in h.nodes}


def test_sync_loss_on_a_moves_mastership_to_b_and_back(pair: Harness) -> None:
    for name in pair.nodes:
        pair.start(name)
    wait_until(lambda: "managing carp1" in pair.nodes["A"].log(), WAIT, "A manages carp1")
    assert masters(pair) == {"A": ["carp0", "carp1"], "B": []}

    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
    wait_until(lambda: masters(pair) == {"A": [], "B": ["carp0", "carp1"]}, WAIT, "VIPs on B")
    assert pair.advskews("B") == {"carp0": 100, "carp1": 100}  # B was not touched

    pair.world.set_link("A", "em2", up=True)
    wait_until(lambda: pair.advskews("A") == {"carp0": 0, "carp1": 0}, WAIT, "A restored")
    wait_until(lambda: masters(pair)["A"] == ["carp0", "carp1"], WAIT, "A MASTER again")
    assert masters(pair)["B"] == []
    back = "notice  carp1 vhid 20 BACKUP -> MASTER"
    wait_until(lambda: back in pair.nodes["A"].log(), WAIT, "A logs its role change")
    log = pair.nodes["A"].log()
    assert "notice  demoting reasons=sync" in log
    assert "notice  restoring baselines" in log
    assert "notice  carp0 vhid 10 MASTER -> BACKUP" in log
    assert "notice  carp0 vhid 10 BACKUP -> MASTER" in log


def test_sigkill_while_demoted_then_restart_restores_every_baseline(pair: Harness) -> None:
    for name in pair.nodes:
        pair.start(name)
    wait_until(lambda: "managing carp1" in pair.nodes["B"].log(), WAIT, "B manages carp1")
    # B (baseline 100) loses its SYNC link and is demoted; then its daemon is killed.
    pair.world.set_link("B", "em2", up=False)
    wait_until(lambda: pair.advskews("B") == {"carp0": 240, "carp1": 240}, WAIT, "B demoted")
    assert pair.stop("B", signal.SIGKILL) == -signal.SIGKILL
    saved = json.loads(pair.nodes["B"].state_path.read_text())
    assert {(v["interface"], v["baseline"]) for v in saved["vhids"]} == {
        ("carp0", 100),
        ("carp1", 100),
    }
    pair.world.set_link("B", "em2", up=True)
    pair.start("B")
    wait_until(lambda: pair.advskews("B") == {"carp0": 100, "carp1": 100}, WAIT, "B restored")
    assert "still demoted from before the restart" in pair.nodes["B"].log()
    assert masters(pair) == {"A": ["carp0", "carp1"], "B": []}


def test_sigterm_leaves_a_demoted_node_demoted(pair: Harness) -> None:
    pair.start("A")
    wait_until(lambda: "managing carp1" in pair.nodes["A"].log(), WAIT, "A manages carp1")
    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
    assert pair.stop("A") == 0
    assert pair.advskews("A") == {"carp0": 240, "carp1": 240}
    assert "stopped demoted=yes reasons=sync" in pair.nodes["A"].log()


def test_multi_vhid_interface_is_demoted_and_restored_vhid_by_vhid(tmp_path: Path) -> None:
    h = Harness(tmp_path, topology="multivhid")
    try:
        h.start("A")
        wait_until(lambda: "managing carp2 vhid 2" in h.nodes["A"].log(), WAIT, "carp2 managed")
        assert h.advskews("A")["carp2/1"] == 0
        assert h.advskews("A")["carp2/2"] == 100
        h.world.set_link("A", "em2", up=False)
        wait_until(
            lambda: h.advskews("A") == {"carp0": 240, "carp1": 240, "carp2/1": 240, "carp2/2": 240},
            WAIT,
            "every vhid demoted",
        )
        h.world.set_link("A", "em2", up=True)
        wait_until(
            lambda: h.advskews("A") == {"carp0": 0, "carp1": 0, "carp2/1": 0, "carp2/2": 100},
            WAIT,
            "each vhid back to its own baseline",
        )
        assert "set carp2 vhid 1 advskew 240 vhid 2 advskew 240" in h.nodes["A"].log()
    finally:
        h.stop_all()


def test_carpdemote_leaves_the_kernels_share_alone(pair: Harness) -> None:
    pair.configure("A", demote={"method": "carpdemote", "carpdemote": 50})
    # The kernel already demotes A by 1: carpdev em1 of carp1 lost its link.
    pair.world.set_link("A", "em1", up=False)
    assert pair.world.demote_count("A") == 1
    pair.start("A")
    wait_until(lambda: "check up" in pair.nodes["A"].log(), WAIT, "sync check up")
    pair.world.set_link("A", "em2", up=False)  # the kernel adds 1 for pfsync, we add 50
    wait_until(lambda: pair.world.demote_count("A") == 52, WAIT, "our share added")
    # carp1 moves when B's master-down timer runs out (A's carp1 is INIT, silent)
    wait_until(lambda: masters(pair)["B"] == ["carp0", "carp1"], WAIT, "VIPs on B")
    pair.world.set_link("A", "em2", up=True)
    wait_until(lambda: "restoring baselines" in pair.nodes["A"].log(), WAIT, "restore")
    wait_until(lambda: pair.world.demote_count("A") == 1, WAIT, "only the kernel's share left")
    assert pair.advskews("A") == {"carp0": 0, "carp1": 0}  # advskew never touched


def test_an_interface_in_the_config_but_missing_is_never_created(pair: Harness) -> None:
    pair.configure("A", demote={"interfaces": ["carp0", "carp5"]})
    pair.start("A")
    wait_until(lambda: "managing carp0" in pair.nodes["A"].log(), WAIT, "carp0 managed")
    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: pair.advskews("A")["carp0"] == 240, WAIT, "carp0 demoted")
    pair.world.set_link("A", "em2", up=True)
    wait_until(lambda: pair.advskews("A")["carp0"] == 0, WAIT, "carp0 restored")
    assert "carp5" not in pair.world.view("A").names
    assert pair.advskews("A")["carp1"] == 0  # not managed: never touched
    assert "carp5: configured in demote.interfaces but missing" in pair.nodes["A"].log()


def test_a_node_found_at_240_with_no_state_is_refused_not_adopted(pair: Harness) -> None:
    pair.world.ifconfig("A", "carp1", "advskew", "240")
    pair.start("A")
    wait_until(lambda: "looks demoted already" in pair.nodes["A"].log(), WAIT, "refusal logged")
    assert "error   carp1 vhid 20 advskew 240 looks demoted already" in pair.nodes["A"].log()
    pair.world.ifconfig("A", "carp1", "advskew", "0")  # the admin sets the real value
    wait_until(lambda: "managing carp1 vhid 20" in pair.nodes["A"].log(), WAIT, "adopted")


def test_carpctl_status_and_maintenance_survive_a_restart(pair: Harness) -> None:
    pair.start("A")
    sock = pair.nodes["A"].socket_path
    wait_until(sock.exists, WAIT, "control socket")
    assert oct(sock.stat().st_mode & 0o777) == "0o600"
    wait_until(lambda: "check up" in pair.nodes["A"].log(), WAIT, "sync check up")
    doc = json.loads(pair.carpctl("A", "status", "--json").stdout)
    assert doc["demoted"] is False
    assert doc["reasons"] == []
    assert doc["checks"]["sync"]["up"] is True
    assert [(c["interface"], c["vhid"], c["state"]) for c in doc["carp"]] == [
        ("carp0", 10, "MASTER"),
        ("carp1", 20, "MASTER"),
    ]

    done = pair.carpctl("A", "maintenance", "on")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
    assert pair.stop("A") == 0
    pair.start("A")
    wait_until(
        lambda: "maintenance is on (from the state file)" in pair.nodes["A"].log(), WAIT, "x"
    )
    wait_until(sock.exists, WAIT, "control socket again")
    doc = json.loads(pair.carpctl("A", "status", "--json").stdout)
    assert doc["demoted"] is True
    assert doc["reasons"] == ["maintenance"]
    assert pair.advskews("A") == {"carp0": 240, "carp1": 240}

    assert pair.carpctl("A", "maintenance", "off").returncode == 0
    wait_until(lambda: pair.advskews("A") == {"carp0": 0, "carp1": 0}, WAIT, "A restored")


def test_carpctl_says_when_the_daemon_is_not_running(pair: Harness) -> None:
    pair.configure("A")
    done = pair.carpctl("A", "status")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"carpctl: carpd-py is not running (no socket at {pair.nodes['A'].socket_path})"
    )


def test_reload_keeps_the_old_config_on_error_and_applies_a_good_one(pair: Harness) -> None:
    pair.start("A")
    node = pair.nodes["A"]
    wait_until(node.socket_path.exists, WAIT, "control socket")
    good = node.config_path.read_text()
    node.config_path.write_text(good + "bogus = 1\n")
    assert node.process is not None
    node.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload failed" in node.log(), WAIT, "reload refused")
    assert "bogus: unknown key" in node.log()
    refused = pair.carpctl("A", "reload")
    assert refused.returncode == 1
    assert "bogus: unknown key" in refused.stderr
    # A good one: the upstream group appears as a check (exec: always good).
    node.config_path.write_text(good)
    pair.configure("A", upstream=[{"name": "gw", "method": "exec", "command": ["/bin/true"]}])
    assert pair.carpctl("A", "reload").returncode == 0
    wait_until(lambda: "configuration reloaded" in node.log(), WAIT, "reloaded")
    wait_until(
        lambda: "upstream:gw" in json.loads(pair.carpctl("A", "status", "--json").stdout)["checks"],
        WAIT,
        "the new check is there",
    )
    assert node.process.poll() is None


def test_garbage_or_a_hanging_ifconfig_is_no_round_and_never_a_demotion(pair: Harness) -> None:
    pair.configure("A", platform={"command_timeout": 0.5})
    pair.start("A")
    node = pair.nodes["A"]
    wait_until(lambda: "check up" in node.log(), WAIT, "sync check up")
    pair.world.set_fault("A", garbage=True)
    wait_until(lambda: "host read failed" in node.log(), WAIT, "the parse failure is logged")
    assert "kind=unparsable" in node.log()
    pair.world.set_fault("A", garbage=False, hang=5.0)
    wait_until(lambda: "kind=timeout" in node.log(), WAIT, "the hang is logged")
    pair.world.set_fault("A", hang=0.0)
    wait_until(lambda: "host read works again" in node.log(), WAIT, "reads work again")
    assert pair.advskews("A") == {"carp0": 0, "carp1": 0}
    assert "demoting" not in node.log()
    assert node.process is not None
    assert node.process.poll() is None


def test_without_root_the_command_error_is_clear_and_nothing_is_lost(pair: Harness) -> None:
    pair.world.set_fault("A", unprivileged=True)
    pair.start("A")
    node = pair.nodes["A"]
    wait_until(lambda: "check up" in node.log(), WAIT, "sync check up")
    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: "Operation not permitted" in node.log(), WAIT, "EPERM logged")
    assert "carpd-py must run as root" in node.log()
    pair.world.set_fault("A", unprivileged=False)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "retried")
    saved = json.loads(node.state_path.read_text())
    assert {v["baseline"] for v in saved["vhids"]} == {0}


def test_reload_while_demoted_loses_no_baseline_and_no_demotion(pair: Harness) -> None:
    pair.start("A")
    node = pair.nodes["A"]
    wait_until(lambda: "check up" in node.log(), WAIT, "sync check up")
    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
    # carp1 is no longer managed: carpd-py gives back what it holds there, carp0 stays demoted.
    pair.configure("A", demote={"interfaces": ["carp0"]})
    assert pair.carpctl("A", "reload").returncode == 0
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 0}, WAIT, "carp1 given back")
    pair.world.set_link("A", "em2", up=True)
    wait_until(lambda: pair.advskews("A") == {"carp0": 0, "carp1": 0}, WAIT, "carp0 restored")
    saved = json.loads(node.state_path.read_text())
    assert [(v["interface"], v["baseline"]) for v in saved["vhids"]] == [("carp0", 0)]


def test_hooks_run_once_per_event_in_order(pair: Harness, tmp_path: Path) -> None:
    out = tmp_path / "hooks.out"
    append = ["/bin/sh", "-c", 'echo "$CARPD_EVENT ${CARPD_REASONS:-}" >> "$0"', str(out)]
    pair.configure("A", hooks={"on_demote": append, "on_restore": append})
    pair.start("A")
    wait_until(lambda: "check up" in pair.nodes["A"].log(), WAIT, "sync check up")
    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: out.exists() and "demote" in out.read_text(), WAIT, "on_demote ran")
    pair.world.set_link("A", "em2", up=True)
    wait_until(lambda: "restore" in out.read_text(), WAIT, "on_restore ran")
    assert out.read_text().splitlines() == ["demote sync", "restore "]


def test_cut_short_ifconfig_output_never_demotes_but_a_real_loss_still_does(
    pair: Harness,
) -> None:
    """Issue 9 item 2 on a real daemon: the simulated `ifconfig` (the full listing only)
    prints its output cut at a chosen character, exit 0, on every run while the fault holds."""
    pair.start("A")
    node = pair.nodes["A"]
    wait_until(lambda: "managing carp1" in node.log(), WAIT, "A manages carp1")
    text = pair.world.ifconfig("A").stdout
    em2_status = text.index("\tstatus: ", text.index("em2:"))
    cuts = {
        "before pfsync0": text.index("pfsync0:"),
        "inside em2's status line": em2_status + len("\tstatus: no"),
        "before em2's status line": em2_status,
        "empty": 0,
    }
    for what, cut in cuts.items():
        pair.world.set_fault("A", truncate=cut)
        mark = len(node.log())

        # the daemon polls every 0.2 s: wait for the misread to be met a few times
        def met(mark: int = mark) -> bool:
            log = node.log()
            return (
                log[mark:].count("re-read by name") >= 5
                or "host read failed" in log[mark:]
                or "demoting" in log
            )

        wait_until(
            met,
            WAIT,
            f"A reads the output cut {what}",
        )
        assert "demoting" not in node.log(), what
        assert pair.advskews("A") == {"carp0": 0, "carp1": 0}, what
    pair.world.set_fault("A", truncate=-1)
    wait_until(lambda: "host read works again" in node.log(), WAIT, "reads work again")
    log = node.log()
    assert "demoting" not in log
    assert "check down" not in log
    assert "pfsync0 missing" not in log

    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")


def test_a_restore_with_every_vhid_refused_logs_that_nothing_was_restored(pair: Harness) -> None:
    """Issue 9 item 10 on a real daemon: both vhids already at 240 when it starts (refused),
    a SYNC loss and its end: no `restoring baselines`, but what really happened."""
    for iface in ("carp0", "carp1"):
        assert pair.world.ifconfig("A", iface, "advskew", "240").code == 0
    pair.start("A")
    node = pair.nodes["A"]
    wait_until(lambda: node.log().count("looks demoted already") == 2, WAIT, "both refused")
    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: "demoting reasons=sync" in node.log(), WAIT, "A demoted")
    pair.world.set_link("A", "em2", up=True)
    wait_until(lambda: "demotion over" in node.log(), WAIT, "the demotion ends")
    log = node.log()
    assert "restoring baselines" not in log
    assert "nothing to restore: carp0 vhid 10, carp1 vhid 20 refused" in log
    assert pair.advskews("A") == {"carp0": 240, "carp1": 240}
