"""The network lab: two real carpd-py daemons in network namespaces, real links, real faults.

Each firewall's daemon runs in its own namespace (fwA, fwB) with em0 (WAN), em1 (LAN) and em2
(SYNC) as real veths; the carp election is the simulated host's, whose em* link states follow
the veth carriers. Probes are real ICMP and TCP packets; faults are real (`ip link set down`,
packets dropped by nftables, a blackhole route, a peer told to ignore echoes).

Needs root, iproute2 and (for packet loss) nftables; skipped without them, except in CI
(CI=true), where that is a failure. Every test deletes its namespaces and processes, pass or
fail (the `lab` fixture; the lab also cleans up at exit and on SIGTERM).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.keepalived import Settings, run_carpd_lab
from carpd_py.sim.harness import Harness, wait_until
from carpd_py.sim.lab import ISP_HOST, SYNC_ADDRESS, UPSTREAM_TARGETS, Lab

pytestmark = pytest.mark.lab

IN_CI = os.environ.get("CI") == "true"
REPO = Path(__file__).resolve().parent.parent
WAIT = 15.0  # seconds; the daemons poll every 0.2 s: every step here takes 0.5 to 3 s
PEER = {"A": SYNC_ADDRESS["B"], "B": SYNC_ADDRESS["A"]}
ISP = {"name": "isp", "method": "icmp", "targets": list(UPSTREAM_TARGETS), "min_up": 1,
       "timeout": 0.5, "fall": 2, "rise": 2}  # fmt: skip


def require(ok: bool, why: str) -> None:
    """Skip a test that cannot run here; in CI (CI=true) fail instead: CI must run them all."""
    if not ok:
        if IN_CI:
            pytest.fail(f"{why} (CI=true: a missing tool or privilege is a failure)")
        pytest.skip(why)


def netns_names() -> str:
    return subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A lab with a direct SYNC cable, or `indirect` parametrised: "switch"."""
    why = Lab.why_unavailable()
    require(why is None, str(why))
    the_lab = Lab(sync=getattr(request, "param", "direct"))
    try:
        the_lab.build()
        yield the_lab
    finally:
        the_lab.close()
        assert the_lab.token not in netns_names()


@pytest.fixture
def pair(lab: Lab, tmp_path: Path) -> Iterator[Harness]:
    """Nodes A (fwA) and B (fwB) configured for the lab: sync with a peer, an ICMP upstream."""
    harness = lab.harness(tmp_path)
    try:
        for name in harness.nodes:
            harness.configure(
                name, sync={"peer": PEER[name], "timeout": 0.5, "fall": 2, "rise": 2},
                upstream=[ISP],
            )  # fmt: skip
        yield harness
    finally:
        harness.stop_all()


def start(h: Harness, *checks: str) -> None:
    """Start both daemons; wait until each has every check up."""
    for name in h.nodes:
        h.start(name)
    for name in h.nodes:
        for check in checks or ("sync", "upstream:isp"):
            wait_until(
                lambda: f"check up check={check}" in h.nodes[name].log(),  # noqa: B023
                WAIT, f"{name}: {check} up",
            )  # fmt: skip
    assert masters(h) == {"A": ["carp0", "carp1"], "B": []}


def masters(h: Harness) -> dict[str, list[str]]:
    """Who is MASTER now. Elections take time (the next advertisement, the master-down
    timer): wait for a role with a deadline, never assert it right after a change."""
    return {n: sorted(i for i, s in h.roles(n).items() if s == "MASTER") for n in h.nodes}


def demoted(h: Harness, name: str) -> bool:
    return h.advskews(name) == {"carp0": 240, "carp1": 240}


def restored(h: Harness) -> bool:
    return h.advskews("A") == {"carp0": 0, "carp1": 0} and masters(h)["A"] == ["carp0", "carp1"]


# --- the simulated host on real links -----------------------------------------------------


def test_the_simulated_links_follow_the_real_veths(lab: Lab, tmp_path: Path) -> None:
    h = lab.harness(tmp_path)
    a, b = h.nodes["A"].ifconfig, h.nodes["B"].ifconfig
    lab.link_down("fwA", "em2")  # a direct cable: B's end loses its carrier too
    # Each node's watcher (`ip monitor link` in its namespace, carrier.watch) follows the
    # real carrier as it changes: no ifconfig has to run for the world to know.
    wait_until(lambda: h.world.demote_count("A") == 1, WAIT, "A follows its em2")
    wait_until(lambda: h.world.demote_count("B") == 1, WAIT, "B follows its em2")
    if not Path("/sys/class/net/em2").exists():  # outside the namespace: nothing to follow
        subprocess.run([a], capture_output=True, check=True)
        assert h.world.demote_count("A") == 1
    assert "status: no carrier" in lab.run_in("fwA", [a, "em2"]).stdout
    assert h.world.demote_count("A") == 1  # the kernel's own pfsync demotion
    assert "status: no carrier" in lab.run_in("fwB", [b, "em2"]).stdout
    assert h.world.demote_count("B") == 1
    lab.link_up("fwA", "em2")
    wait_until(lambda: lab.carrier("fwB", "em2"), WAIT, "carrier back")
    for node, key in (("A", "fwA"), ("B", "fwB")):
        assert "status: active" in lab.run_in(key, [h.nodes[node].ifconfig, "em2"]).stdout
        assert h.world.demote_count(node) == 0


# --- (a) SYNC carrier ---------------------------------------------------------------------


@pytest.mark.parametrize("lab", ["switch"], indirect=True)
def test_a_real_sync_carrier_loss_is_heard_at_once_not_at_the_next_poll(
    pair: Harness, lab: Lab
) -> None:
    """interval 5, resync_interval 30: the veth's carrier loss reaches the simulated kernel
    through netlink (carrier.watch), its RTM_IFINFO reaches carpd-py, which demotes."""
    for name in pair.nodes:
        pair.configure(name, interval=5.0, platform={"resync_interval": 30.0})
    start(pair)
    lab.link_down("fwA", "em2")
    took = wait_until(lambda: demoted(pair, "A"), WAIT, "A demoted")
    assert took < 2.5  # not the next poll (up to 5 s), nor the resync (30 s)
    assert "notice  demoting reasons=sync" in pair.nodes["A"].log()


@pytest.mark.parametrize("lab", ["switch"], indirect=True)
def test_sync_carrier_loss_on_a_moves_mastership_to_b_and_back(pair: Harness, lab: Lab) -> None:
    start(pair)
    lab.link_down("fwA", "em2")  # A's SYNC port; B's link to the switch stays up
    wait_until(lambda: demoted(pair, "A"), WAIT, "A demoted")
    wait_until(lambda: masters(pair) == {"A": [], "B": ["carp0", "carp1"]}, WAIT, "VIPs on B")
    assert pair.advskews("B") == {"carp0": 100, "carp1": 100}
    lab.link_up("fwA", "em2")
    wait_until(lambda: restored(pair), WAIT, "A restored and MASTER")
    assert masters(pair)["B"] == []
    assert "notice  demoting reasons=sync" in pair.nodes["A"].log()
    # B's sync.peer probe crosses the same link: B is demoted too (peer silent), but A's
    # kernel demotion (+1, pfsync link down) keeps B the better node.
    assert pair.world.demote_count("A") == 0


def peers_up(h: Harness) -> None:
    for name in h.nodes:
        wait_until(
            lambda: "peer up: deciding together" in h.nodes[name].log(),  # noqa: B023
            WAIT, f"{name} hears its peer",
        )  # fmt: skip


def untouched(h: Harness) -> bool:
    return (
        masters(h) == {"A": ["carp0", "carp1"], "B": []}
        and h.advskews("A") == {"carp0": 0, "carp1": 0}
        and h.advskews("B") == {"carp0": 100, "carp1": 100}
    )


def stays(predicate: Callable[[], bool], seconds: float = 3.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert predicate(), "something moved"
        time.sleep(0.05)


@pytest.mark.xfail(
    strict=False,
    reason="known defect, open: when the direct cable goes back in, the node whose read lags "
    "can demote for about a second (1 run in 3 to 6); the fix on branch cable made the pull "
    "race of make demo worse, so it is not merged yet",
)
def test_a_pulled_direct_sync_cable_moves_nothing(pair: Harness, lab: Lab) -> None:
    # The handbook's crossover cable: both ends lose carrier and both kernels add 1, which
    # cancels out. The daemons talk over the LAN ([peer]): both see the SYNC link down, so
    # neither demotes; the VIPs stay on A, together. (Alone, both demoted, and their
    # per-interface commands could leave carp0 on one node and carp1 on the other.)
    lab.pair_up(pair)
    start(pair)
    peers_up(pair)
    lab.link_down("fwA", "em2")
    notice = "notice  sync lost on both nodes: failover would not help"
    for name in pair.nodes:
        wait_until(lambda: notice in pair.nodes[name].log(), WAIT, f"{name} says why")  # noqa: B023
    assert pair.world.demote_count("A") == pair.world.demote_count("B") == 1
    stays(lambda: untouched(pair))
    for name in pair.nodes:
        assert "demoting" not in pair.nodes[name].log()
    lab.link_up("fwA", "em2")
    # Each simulated kernel takes its -1 back when its node next reads the carrier, up to an
    # interval apart (a real kernel at the link event): carp may move for that moment.
    for name in pair.nodes:
        wait_until(
            lambda: pair.nodes[name].log().count("check up check=sync") >= 2,  # noqa: B023
            WAIT, f"{name}: sync up again",
        )  # fmt: skip
    wait_until(lambda: untouched(pair), WAIT, "all on A, untouched")
    stays(lambda: untouched(pair), 1.0)
    for name in pair.nodes:
        log = pair.nodes[name].log()
        assert "demoting" not in log, f"{name}:\n{log}\n---\n" + pair.nodes["AB"[name == "A"]].log()


@pytest.mark.parametrize("lab", ["switch"], indirect=True)
def test_one_sync_port_demotes_that_node_only(pair: Harness, lab: Lab) -> None:
    # A's port on the SYNC switch dies: A's link reads down (its own fault); B's link is up
    # but its sync.peer probe to A fails because of A. Together: only A steps down.
    lab.pair_up(pair)
    start(pair)
    peers_up(pair)
    lab.link_down("fwA", "em2")
    wait_until(lambda: demoted(pair, "A"), WAIT, "A demoted")
    wait_until(lambda: masters(pair)["B"] == ["carp0", "carp1"], WAIT, "B MASTER of both")
    theirs = "notice  sync lost because the peer's own SYNC link is down"
    wait_until(lambda: theirs in pair.nodes["B"].log(), WAIT, "B says it is A's")
    stays(lambda: pair.advskews("B") == {"carp0": 100, "carp1": 100}, 2.0)
    assert "demoting" not in pair.nodes["B"].log()


def test_a_shared_upstream_outage_moves_nothing(pair: Harness, lab: Lab) -> None:
    require(Lab.tool_missing("sysctl") is None, str(Lab.tool_missing("sysctl")))
    lab.pair_up(pair)
    start(pair)
    peers_up(pair)
    lab.silence("up")  # the one ISP router stops answering both nodes' probes
    notice = "notice  upstream:isp lost on both nodes: failover would not help"
    for name in pair.nodes:
        wait_until(lambda: notice in pair.nodes[name].log(), WAIT, f"{name} says why")  # noqa: B023
    stays(lambda: untouched(pair))
    lab.silence("up", on=False)


# --- (b) (e) upstream ICMP ----------------------------------------------------------------


def test_blackholed_upstream_demotes_a_for_upstream_and_the_route_back_restores(
    pair: Harness, lab: Lab
) -> None:
    start(pair)
    for target in UPSTREAM_TARGETS:
        lab.blackhole("fwA", f"{target}/32")
    wait_until(lambda: demoted(pair, "A"), WAIT, "A demoted")
    wait_until(lambda: masters(pair)["B"] == ["carp0", "carp1"], WAIT, "VIPs on B")
    assert "notice  demoting reasons=upstream:isp" in pair.nodes["A"].log()
    for target in UPSTREAM_TARGETS:
        lab.unblackhole("fwA", f"{target}/32")
    wait_until(lambda: restored(pair), WAIT, "A restored")
    assert "demoting" not in pair.nodes["B"].log()


def test_total_wan_loss_demotes_after_fall_rounds(pair: Harness, lab: Lab) -> None:
    require(Lab.tool_missing("nft") is None, str(Lab.tool_missing("nft")))
    start(pair)
    lab.loss("fwA", "em0", 100)  # nothing reaches fwA over the WAN: no reply, no ARP
    wait_until(lambda: demoted(pair, "A"), WAIT, "A demoted")
    wait_until(lambda: masters(pair)["B"] == ["carp0", "carp1"], WAIT, "VIPs on B")
    assert "notice  demoting reasons=upstream:isp" in pair.nodes["A"].log()
    assert lab.dropped("fwA", "em0") > 0
    lab.loss("fwA", "em0", 0)
    wait_until(lambda: restored(pair), WAIT, "A restored")


def test_thirty_percent_wan_loss_does_not_flap(pair: Harness, lab: Lab) -> None:
    # Two targets, min_up 1, fall 3: a round is bad when both replies are lost (9%), and
    # three such rounds in a row are rare; rise 3 with a hold-down keeps one slip from flapping.
    require(Lab.tool_missing("nft") is None, str(Lab.tool_missing("nft")))
    for name in pair.nodes:
        pair.configure(name, upstream=[{**ISP, "fall": 3, "rise": 3}])
    start(pair)
    lab.loss("fwA", "em0", 30)
    time.sleep(8.0)  # 25 to 40 rounds (a round with a lost reply waits out its 0.5 s)
    assert lab.dropped("fwA", "em0") >= 5  # the loss is real
    log = pair.nodes["A"].log()
    assert log.count("notice  demoting") <= 1, log
    assert pair.nodes["A"].process is not None
    assert pair.nodes["A"].process.poll() is None


# --- (c) upstream TCP ---------------------------------------------------------------------


def test_tcp_upstream_refused_demotes_and_the_service_back_restores(
    pair: Harness, lab: Lab
) -> None:
    web = {"name": "web", "method": "tcp", "targets": [ISP_HOST], "port": 8080,
           "timeout": 0.5, "fall": 2, "rise": 2}  # fmt: skip
    listener = lab.tcp_listener("up", ISP_HOST, 8080)
    for name in pair.nodes:
        pair.configure(name, upstream=[web])
    start(pair, "sync", "upstream:web")
    listener.kill()  # the service dies: connect() is refused (RST) on both nodes
    listener.wait()
    for name in pair.nodes:
        wait_until(lambda: demoted(pair, name), WAIT, f"{name} demoted")  # noqa: B023
        assert "notice  demoting reasons=upstream:web" in pair.nodes[name].log()
    lab.tcp_listener("up", ISP_HOST, 8080)
    wait_until(lambda: restored(pair), WAIT, "A restored and MASTER")
    wait_until(lambda: pair.advskews("B") == {"carp0": 100, "carp1": 100}, WAIT, "B restored")


# --- (d) sync peer ------------------------------------------------------------------------


def test_a_silent_sync_peer_demotes_a_after_fall_rounds(pair: Harness, lab: Lab) -> None:
    require(Lab.tool_missing("sysctl") is None, str(Lab.tool_missing("sysctl")))
    start(pair)
    lab.silence("fwB")  # B stops answering echoes; A still answers B
    wait_until(lambda: demoted(pair, "A"), WAIT, "A demoted")
    wait_until(lambda: masters(pair)["B"] == ["carp0", "carp1"], WAIT, "VIPs on B")
    assert "notice  demoting reasons=sync" in pair.nodes["A"].log()
    assert pair.world.demote_count("A") == 0  # the link is fine: only the peer is silent
    lab.silence("fwB", on=False)
    wait_until(lambda: restored(pair), WAIT, "A restored")
    assert "demoting" not in pair.nodes["B"].log()


# --- the benchmark's carpd-py side (bench/keepalived.py), smallest run --------------------


def test_the_lab_benchmark_measures_carpd_py(lab: Lab, tmp_path: Path) -> None:
    settings = Settings(interval=0.2, timeout=0.3, fall=2, rise=2, settle=WAIT)
    kinds = ("sync_carrier", "upstream_blackhole")
    out = run_carpd_lab(tmp_path, 1, settings, idle=1.0, kinds=kinds, lab=lab,
                        progress=lambda _: None)  # fmt: skip
    for kind in kinds:
        for what in ("reaction", "restore"):
            assert out[what][kind]["n"] == 1
            assert out[what][kind]["missed"] == 0
            assert 0 < out[what][kind]["p50"] < WAIT
    assert out["reaction"]["sync_carrier"]["p50"] < 2.0  # a link read down counts at once
    # The daemon's exec of the set command comes before the simulator applies it, and the
    # SYNC carrier loss is split at the watcher, the simulator's message and the exec.
    for kind in kinds:
        assert 0 < out["reaction_exec"][kind]["p50"] <= out["reaction"][kind]["p50"]
    parts = out["sync_carrier_parts"]
    assert {"watcher", "transaction", "daemon", "net", "applied_after_exec"} <= set(parts)
    assert parts["daemon"]["p50"] >= parts["net"]["p50"]
    assert out["rss_peak_mb"] > 5
    # An idle round decides nothing and reads nothing (the routing socket says when to read):
    # over this 1 s window the daemon may use less than one clock tick of CPU.
    assert out["cpu_with_children_s_per_h"] >= out["cpu_s_per_h"] >= 0
    assert 0 < out["sim_command_latency_s"] < 1


# --- cleanup ------------------------------------------------------------------------------


def fail_inside(lab: Lab, started: list[subprocess.Popen[bytes]]) -> None:
    with lab:
        started.append(lab.popen_in("fwA", ["sleep", "60"]))
        started.append(subprocess.Popen([*lab.exec_argv("fwB"), "sleep", "60"]))  # unregistered
        raise RuntimeError("boom")


def test_a_failing_body_leaves_no_namespace_and_no_process() -> None:
    require(Lab.available(), str(Lab.why_unavailable()))
    lab = Lab()
    started: list[subprocess.Popen[bytes]] = []
    with pytest.raises(RuntimeError, match="boom"):
        fail_inside(lab, started)
    sleeper, stray = started
    assert sleeper.poll() is not None
    assert stray.wait(5) == -signal.SIGTERM  # found in the namespace and killed
    assert lab.token not in netns_names()


_SIGTERMED = """
import json, sys, time
from carpd_py.sim.lab import Lab
lab = Lab().__enter__()
proc = lab.popen_in("up", ["sleep", "60"])
print(json.dumps({"token": lab.token, "pid": proc.pid}), flush=True)
time.sleep(60)
"""


def test_sigterm_cleans_up() -> None:
    require(Lab.available(), str(Lab.why_unavailable()))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_SIGTERMED)],
                             stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert child.stdout is not None
        started: dict[str, Any] = json.loads(child.stdout.readline())
        assert started["token"] in netns_names()
        child.send_signal(signal.SIGTERM)
        assert child.wait(20) == -signal.SIGTERM  # died of it, as without the lab
        assert started["token"] not in netns_names()
        with pytest.raises(ProcessLookupError):
            os.kill(started["pid"], 0)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_sweep_removes_what_a_dead_run_left() -> None:
    require(Lab.available(), str(Lab.why_unavailable()))
    gone = subprocess.Popen(["true"])
    gone.wait()
    name = f"cpl-{gone.pid}-abcd-fwA"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert name in Lab.sweep()
        assert name not in netns_names()
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
