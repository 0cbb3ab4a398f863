"""A real Prometheus scrapes the two running daemons of the simulated pair during a failover."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from pathlib import Path

from carpd_py.sim.events import SimEvent
from carpd_py.sim.harness import Harness, wait_until

from .prometheus import free_port, poll, running_prometheus, tool

WAIT = 20.0
RULES = Path(__file__).resolve().parent.parent / "etc" / "prometheus" / "carpd-py-rules.yml"


def split_brains(events: list[SimEvent]) -> list[tuple[str, float]]:
    """Every (interface, time) at which both nodes were MASTER of one vhid for longer than
    the instant of a takeover (carp_master_down() then the old master's carp_proto_input_c())."""
    state: dict[tuple[str, int | None], dict[str, str]] = {}
    since: dict[tuple[str, int | None], float] = {}
    out = []
    for e in events:
        if not e.is_transition or e.iface is None or e.new is None:
            continue
        key = (e.iface, e.vhid)
        roles = state.setdefault(key, {})
        roles[e.node] = e.new
        split = sum(1 for r in roles.values() if r == "MASTER") > 1
        if split:
            since.setdefault(key, e.time)
        elif key in since:
            if e.time > since[key]:
                out.append((e.iface, since[key]))
            del since[key]
    return out + [(iface, t) for (iface, _), t in since.items()]


def metrics_port(h: Harness, name: str) -> int:
    found: list[int] = []

    def logged() -> bool:
        m = re.search(r"metrics url=http://127\.0\.0\.1:(\d+)/metrics", h.nodes[name].log())
        if m:
            found.append(int(m.group(1)))
        return bool(found)

    wait_until(logged, WAIT, f"{name} logs its metrics URL")
    return found[0]


def test_prometheus_sees_the_pair_fail_over_and_back(tmp_path: Path) -> None:
    h = Harness(tmp_path / "pair")
    try:
        for name in h.nodes:
            # The config refuses port 0 (a scrape target must be known): pick free ones.
            h.configure(name, metrics={"listen": f"127.0.0.1:{free_port()}"})
            h.start(name)
        ports = {name: metrics_port(h, name) for name in h.nodes}

        # The exposition of a running daemon is valid for promtool.
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['A']}/metrics", timeout=5) as r:
            text = r.read().decode()
        check = subprocess.run(
            [tool("promtool"), "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr

        targets = [f"127.0.0.1:{p}" for p in ports.values()]
        instance = {f"127.0.0.1:{p}": n for n, p in ports.items()}
        with running_prometheus(tmp_path, targets, RULES) as prom:

            def masters() -> dict[str, set[str]] | None:
                rows = prom.query('carpd_carp_state{state="master"} == 1') or []
                out: dict[str, set[str]] = {"A": set(), "B": set()}
                for row in rows:
                    out[instance[row["metric"]["instance"]]].add(row["metric"]["interface"])
                return out if rows else None

            poll(lambda: masters() if masters() == {"A": {"carp0", "carp1"}, "B": set()} else None,
                 30, "A MASTER of both vhids in Prometheus")  # fmt: skip
            h.world.set_link("A", "em2", up=False)
            poll(lambda: masters() if masters() == {"A": set(), "B": {"carp0", "carp1"}} else None,
                 30, "B MASTER of both vhids in Prometheus")  # fmt: skip
            # OpenBSD 7.4's pfsync demotes A's kernel at once (+1), so the VIPs may move
            # before A's daemon demotes: wait for that too.
            poll(lambda: prom.query("carpd_carp_advskew{interface='carp0'} == 240"),
                 30, "A demoted in Prometheus")  # fmt: skip
            demoted = prom.query("carpd_demoted == 1") or []
            assert {instance[r["metric"]["instance"]] for r in demoted} == {"A"}
            reason = prom.query('carpd_demotion_reason{reason="sync"} == 1') or []
            assert {instance[r["metric"]["instance"]] for r in reason} == {"A"}
            sync = prom.query("carpd_sync_up == 0") or []
            assert {instance[r["metric"]["instance"]] for r in sync} == {"A"}
            assert prom.query("carpd_carp_advskew{interface='carp0'} == 240") is not None

            h.world.set_link("A", "em2", up=True)
            poll(lambda: masters() if masters() == {"A": {"carp0", "carp1"}, "B": set()} else None,
                 30, "A MASTER again in Prometheus")  # fmt: skip
            restores = poll(lambda: prom.query("carpd_restores_total > 0"), 30, "a restore")
            assert {instance[r["metric"]["instance"]] for r in restores} == {"A"}
            # A handover seen by one evaluation (the two daemons poll at their own times) may
            # leave a pending alert; it must never fire, and the kernels never had two
            # MASTERs of one vhid for any length of time.
            split = prom.query('ALERTS{alertname="CarpSplitBrain",alertstate="firing"}')
            assert split is None
            assert split_brains(h.world.events()) == []
    finally:
        h.stop_all()
