"""The Prometheus endpoint: series, labels and values from a hand-made Status; promtool; the
HTTP server's bounds; and a real Prometheus server scraping it.

promtool and prometheus come with the Debian package `prometheus`. Outside CI a missing one
skips the tests that need it; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import gzip
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

import carpd_py
from carpd_py import metrics
from carpd_py.config import Config, DemoteConfig, SyncConfig, UpstreamConfig
from carpd_py.decide import Memory, VhidRecord, vhid_map
from carpd_py.hysteresis import Check
from carpd_py.metrics import (
    StatusCollector,
    make_registry,
    metric_families,
    parse_listen,
    start_metrics_server,
    stop_metrics_server,
)
from carpd_py.model import CarpInfo, CarpNode, HostView, Interface, PfsyncInfo
from carpd_py.pairing import PairStatus
from carpd_py.supervisor import Status
from carpd_py.telemetry import Telemetry

from .prometheus import api, poll, running_prometheus, tool

T = TypeVar("T")

# The OpenMetrics side of prometheus_client has no annotations.
generate_openmetrics: Callable[[CollectorRegistry], bytes] = openmetrics_exposition.generate_latest
parse_openmetrics: Callable[[str], Iterator[Metric]] = (
    openmetrics_parser.text_string_to_metric_families
)

RULES = Path(__file__).resolve().parent.parent / "etc" / "prometheus" / "carpd-py-rules.yml"
UP = ("UP", "BROADCAST", "RUNNING", "SIMPLEX", "MULTICAST")
SINCE = 1_700_000_000.0

CONFIG = Config(
    demote=DemoteConfig(method="advskew", group="carp"),
    sync=SyncConfig(interface="pfsync0", peer="10.255.255.3"),
    upstream=(
        UpstreamConfig(name="isp", targets=("203.0.113.6", "198.51.100.1")),
        UpstreamConfig(name="dmz", targets=("192.0.2.1",)),
    ),
)


# --- building a Status by hand ------------------------------------------------------------


def carp(name: str, dev: str, *nodes: tuple[int, str, int]) -> Interface:
    info = CarpInfo(
        carpdev=dev,
        advbase=1,
        nodes=tuple(CarpNode(v, s, k) for v, s, k in nodes),
        balancing="ip" if len(nodes) > 1 else None,
    )
    return Interface(name, 0x8843, UP, 1500, carp=info, groups=("carp",), status="backup")


def phys(name: str) -> Interface:
    return Interface(name, 0x8843, UP, 1500, media="Ethernet autoselect", status="active")


def host_view(carps: tuple[Interface, ...] | None = None) -> HostView:
    if carps is None:
        carps = (
            carp("carp0", "em0", (1, "BACKUP", 240)),
            carp("carp1", "em1", (2, "MASTER", 240), (3, "<UNKNOWN>", 100)),
        )
    pfsync = Interface(
        "pfsync0",
        0x41,
        ("UP", "RUNNING"),
        1500,
        pfsync=PfsyncInfo(syncdev="em2", maxupd=128, defer=False),
    )
    return HostView(
        interfaces=(phys("em0"), phys("em1"), phys("em2"), *carps, pfsync),
        group_demote=MappingProxyType({"carp": 0, "pfsync": 0}),
        sysctl=MappingProxyType({"net.inet.carp.preempt": 1, "net.inet.carp.allow": 1}),
    )


def telemetry() -> Telemetry:
    t = Telemetry()
    t.demotions["sync"] += 1
    t.restores = 2
    t.transitions[("carp0", 1, "MASTER", "BACKUP")] += 1
    t.transitions[("carp1", 2, "BACKUP", "MASTER")] += 3
    t.probe_failures[("sync", "10.255.255.3")] += 4
    t.probe_failures[("upstream:isp", "203.0.113.6")] += 1
    t.command_errors["ifconfig"] += 2
    t.read_errors = 1
    t.polls = 2
    for seconds in (0.0007, 0.03, 9.0):
        t.probe_duration("sync", seconds)
    t.probe_duration("upstream:isp", 0.002)
    t.poll_durations.observe(0.004)
    t.poll_durations.observe(0.2)
    return t


def demoted_status(since: float = SINCE) -> Status:
    """Demoted for sync; the isp check up, the dmz check without a verdict yet."""
    memory = Memory(
        demoted=True,
        since=since,
        reasons=("sync",),
        vhids=vhid_map(
            {
                ("carp0", 1): VhidRecord(baseline=0, target=240, seen=240),
                ("carp1", 2): VhidRecord(baseline=100, target=240, seen=240),
            }
        ),
    )
    return Status(
        config=CONFIG,
        started=since - 60,
        updated=since + 5,
        view=host_view(),
        checks=MappingProxyType(
            {
                "sync": Check(up=False, bad=3),
                "upstream:isp": Check(up=True),
                "upstream:dmz": Check(),
            }
        ),
        memory=memory,
        warnings=("pfsync0: syncdev em2 has no carrier (no carrier)",),
        telemetry=telemetry().snapshot(),
    )


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples_of(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def exposition(status: Status) -> str:
    return generate_latest(make_registry(lambda: status)).decode()


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def series(samples: Samples, name: str) -> set[frozenset[tuple[str, str]]]:
    return {labels for n, labels in samples if n == name}


def L(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


# --- the series ----------------------------------------------------------------------------


def test_carp_series_from_the_host_view() -> None:
    s = samples_of(exposition(demoted_status()))
    assert series(s, "carpd_carp_state") == {
        L(interface=i, vhid=v, state=st)
        for i, v in (("carp0", "1"), ("carp1", "2"), ("carp1", "3"))
        for st in ("init", "backup", "master")
    }
    assert get(s, "carpd_carp_state", interface="carp0", vhid="1", state="backup") == 1
    assert get(s, "carpd_carp_state", interface="carp0", vhid="1", state="master") == 0
    assert get(s, "carpd_carp_state", interface="carp0", vhid="1", state="init") == 0
    assert get(s, "carpd_carp_state", interface="carp1", vhid="2", state="master") == 1
    # <UNKNOWN> is none of the three
    assert all(
        get(s, "carpd_carp_state", interface="carp1", vhid="3", state=st) == 0
        for st in ("init", "backup", "master")
    )
    assert get(s, "carpd_carp_advskew", interface="carp0", vhid="1") == 240
    assert get(s, "carpd_carp_advskew", interface="carp1", vhid="3") == 100
    assert series(s, "carpd_carp_group_demote") == {L(group="carp"), L(group="pfsync")}
    assert get(s, "carpd_carp_group_demote", group="carp") == 0
    assert get(s, "carpd_carp_preempt") == 1
    assert get(s, "carpd_host_read_ok") == 1
    assert get(s, "carpd_host_read_errors_total") == 1


def test_decision_series_from_memory() -> None:
    s = samples_of(exposition(demoted_status()))
    assert get(s, "carpd_demoted") == 1
    assert get(s, "carpd_demoted_since_seconds") == SINCE
    assert get(s, "carpd_maintenance") == 0
    assert {
        dict(x)["reason"]: get(s, "carpd_demotion_reason", **dict(x))
        for x in series(s, "carpd_demotion_reason")
    } == {"sync": 1, "upstream:isp": 0, "upstream:dmz": 0, "maintenance": 0}
    assert series(s, "carpd_baseline_advskew") == {
        L(interface="carp0", vhid="1"),
        L(interface="carp1", vhid="2"),
    }
    assert get(s, "carpd_baseline_advskew", interface="carp1", vhid="2") == 100
    assert get(s, "carpd_demote_info", method="advskew", group="carp") == 1
    assert series(s, "carpd_demote_share") == set()  # only with method carpdemote
    assert get(s, "carpd_build_info", version=carpd_py.__version__) == 1
    assert get(s, "carpd_warnings") == 1


def test_counters_from_telemetry_and_every_reason_from_zero() -> None:
    s = samples_of(exposition(demoted_status()))
    assert {
        dict(x)["reason"]: get(s, "carpd_demotions_total", **dict(x))
        for x in series(s, "carpd_demotions_total")
    } == {"sync": 1, "upstream:isp": 0, "upstream:dmz": 0, "maintenance": 0}
    assert get(s, "carpd_restores_total") == 2
    transitions = {"interface": "carp1", "vhid": "2", "from": "backup", "to": "master"}
    assert get(s, "carpd_carp_transitions_total", **transitions) == 3
    assert len(series(s, "carpd_carp_transitions_total")) == 2
    assert get(s, "carpd_probe_failures_total", check="sync", target="10.255.255.3") == 4
    assert get(s, "carpd_probe_failures_total", check="upstream:isp", target="203.0.113.6") == 1
    assert get(s, "carpd_command_errors_total", command="ifconfig") == 2


def test_checks_without_a_verdict_have_no_series() -> None:
    s = samples_of(exposition(demoted_status()))
    assert series(s, "carpd_check_up") == {L(check="sync"), L(check="upstream:isp")}
    assert get(s, "carpd_check_up", check="sync") == 0
    assert get(s, "carpd_check_up", check="upstream:isp") == 1
    assert get(s, "carpd_sync_up") == 0


def test_histograms_are_cumulative() -> None:
    s = samples_of(exposition(demoted_status()))
    name = "carpd_probe_duration_seconds"
    buckets = {
        dict(x)["le"]: get(s, f"{name}_bucket", **dict(x))
        for x in series(s, f"{name}_bucket")
        if dict(x)["check"] == "sync"
    }
    # 0.0007 in the first bucket, 0.03 in (0.025, 0.05], 9.0 above the last bound
    assert buckets == {
        "0.001": 1,
        "0.0025": 1,
        "0.005": 1,
        "0.01": 1,
        "0.025": 1,
        "0.05": 2,
        "0.1": 2,
        "0.25": 2,
        "0.5": 2,
        "1.0": 2,
        "2.5": 2,
        "5.0": 2,
        "+Inf": 3,
    }
    assert get(s, f"{name}_count", check="sync") == 3
    assert get(s, f"{name}_sum", check="sync") == pytest.approx(9.0307)
    assert get(s, f"{name}_count", check="upstream:isp") == 1
    assert get(s, "carpd_poll_duration_seconds_bucket", le="0.005") == 1
    assert get(s, "carpd_poll_duration_seconds_bucket", le="0.25") == 2
    assert get(s, "carpd_poll_duration_seconds_count") == 2
    assert get(s, "carpd_poll_duration_seconds_sum") == pytest.approx(0.204)


def test_before_the_first_round_and_without_sync() -> None:
    config = replace(CONFIG, sync=None, demote=DemoteConfig(method="carpdemote", group="carp"))
    status = Status(config=config, started=SINCE)
    s = samples_of(exposition(status))
    for absent in (
        "carpd_carp_state",
        "carpd_carp_advskew",
        "carpd_carp_preempt",
        "carpd_host_read_ok",
        "carpd_sync_up",
        "carpd_check_up",
        "carpd_demoted_since_seconds",
        "carpd_probe_duration_seconds_count",
    ):
        assert series(s, absent) == set(), absent
    assert get(s, "carpd_demoted") == 0
    assert {dict(x)["reason"] for x in series(s, "carpd_demotion_reason")} == {
        "upstream:isp",
        "upstream:dmz",
        "maintenance",
    }
    assert get(s, "carpd_demote_share", group="carp") == 0
    assert get(s, "carpd_poll_duration_seconds_count") == 0
    assert get(s, "carpd_command_errors_total", command="ifconfig") == 0


def test_a_failed_read_keeps_the_last_view_and_says_so() -> None:
    status = replace(demoted_status(), read_error="ifconfig: timed out after 2s")
    s = samples_of(exposition(status))
    assert get(s, "carpd_host_read_ok") == 0
    assert get(s, "carpd_carp_state", interface="carp1", vhid="2", state="master") == 1
    no_view = replace(status, view=None)
    assert get(samples_of(exposition(no_view)), "carpd_host_read_ok") == 0


def test_maintenance_and_a_reason_no_longer_configured() -> None:
    status = demoted_status()
    memory = replace(status.memory, maintenance=True, reasons=("maintenance", "upstream:old"))
    s = samples_of(exposition(replace(status, memory=memory)))
    assert get(s, "carpd_maintenance") == 1
    assert get(s, "carpd_demotion_reason", reason="maintenance") == 1
    assert get(s, "carpd_demotion_reason", reason="upstream:old") == 1
    assert get(s, "carpd_demotion_reason", reason="sync") == 0


def test_process_metrics_with_the_standard_names() -> None:
    s = samples_of(exposition(demoted_status()))
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ):
        assert series(s, name) == {L()}, name
    assert get(s, "process_resident_memory_bytes") > 0
    assert 0 < get(s, "process_start_time_seconds") <= time.time()
    assert get(s, "process_open_fds") >= 3


def test_own_registry_leaves_the_global_one_alone() -> None:
    make_registry(demoted_status)
    assert b"carpd_" not in generate_latest(REGISTRY)


def test_families_are_built_once_per_status() -> None:
    holder = [demoted_status()]
    collector = StatusCollector(lambda: holder[0])
    first = collector.collect()
    assert collector.collect() is first
    holder[0] = replace(holder[0], warnings=())
    assert collector.collect() is not first


def test_openmetrics_exposition_is_valid() -> None:
    """Prometheus asks for OpenMetrics first; its strict parser must accept what we serve."""
    text = generate_openmetrics(make_registry(demoted_status)).decode()
    names = {f.name for f in parse_openmetrics(text)}
    assert {"carpd_demotions", "carpd_carp_state", "carpd_probe_duration_seconds"} <= names


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(demoted_status(), id="demoted"),
        pytest.param(Status(config=Config(), started=SINCE), id="empty"),
    ],
)
def test_promtool_check_metrics(status: Status) -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=exposition(status),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def big_status(n: int = 256) -> Status:
    carps = tuple(carp(f"carp{i}", "em0", (i + 1, "MASTER", 0)) for i in range(n))
    t = telemetry()
    for i in range(n):
        t.transitions[(f"carp{i}", i + 1, "BACKUP", "MASTER")] += 1
    base = demoted_status()
    vhids = {(f"carp{i}", i + 1): VhidRecord(baseline=0, target=240, seen=240) for i in range(n)}
    memory = replace(base.memory, vhids=vhid_map(vhids))
    return replace(base, view=host_view(carps), memory=memory, telemetry=t.snapshot())


def test_collect_256_carp_interfaces_is_fast() -> None:
    status = big_status()
    start = time.perf_counter()
    families = metric_families(status)
    build = time.perf_counter() - start
    registry = make_registry(lambda: status)
    start = time.perf_counter()
    text = generate_latest(registry)
    scrape = time.perf_counter() - start
    assert sum(len(f.samples) for f in families) > 256 * 6
    assert text.count(b"carpd_carp_state{") == 256 * 3
    # Measured about 1.5 ms and 8 ms on a 2-CPU x86_64 VM; the bounds catch a quadratic only.
    assert build < 0.25
    assert scrape < 0.5


# --- listen addresses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9723", ("127.0.0.1", 9723)),
        ("[::1]:9723", ("::1", 9723)),
        ("localhost:0", ("localhost", 0)),
        ("0.0.0.0:9723", ("0.0.0.0", 9723)),
        ("[::]:65535", ("::", 65535)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize(
    "listen",
    [
        "",
        ":9723",
        "9723",
        "[::1]",
        "[::1]9723",
        "[]:9723",
        "127.0.0.1:65536",
        "1.2.3.4:",
        "fw.example.org:9723",
        "[127.0.0.1]:9723",
        "[localhost]:9723",
        "::1:9723",
    ],
)
def test_parse_listen_refuses(listen: str) -> None:
    with pytest.raises(ValueError, match=r"metrics\.listen"):
        parse_listen(listen)


# --- the HTTP server -----------------------------------------------------------------------


@contextmanager
def serving(listen: str, get_status: Callable[[], Status]) -> Iterator[metrics.MetricsServer]:
    server, thread = start_metrics_server(listen, get_status)
    try:
        yield server
    finally:
        stop_metrics_server(server, thread)
        assert not thread.is_alive()


def fetch(url: str, timeout: float = 5.0) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def test_serves_the_latest_status_on_a_free_port() -> None:
    holder = [demoted_status()]
    with serving("127.0.0.1:0", lambda: holder[0]) as server:
        assert server.server_address[0] == "127.0.0.1"
        assert server.port > 0
        status, ctype, body = fetch(f"http://127.0.0.1:{server.port}/metrics")
        assert status == 200
        assert ctype.startswith("text/plain")
        assert get(samples_of(body), "carpd_demoted") == 1
        holder[0] = replace(holder[0], memory=Memory())
        assert (
            get(samples_of(fetch(f"http://127.0.0.1:{server.port}/metrics")[2]), "carpd_demoted")
            == 0
        )
        port = server.port
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_serves_on_ipv6_loopback() -> None:
    with serving("[::1]:0", demoted_status) as server:
        assert server.address_family == socket.AF_INET6
        assert server.server_address[0] == "::1"
        body = fetch(f"http://[::1]:{server.port}/metrics")[2]
        assert "carpd_build_info" in body


def test_localhost_listens_on_loopback_only() -> None:
    with serving("localhost:0", demoted_status) as server:
        assert server.server_address[0] in ("127.0.0.1", "::1")


def recv_closed(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes the connection within `timeout`."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_flood_is_bounded_and_stalled_scrapers_are_dropped(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(metrics._Handler, "deadline", 2.0)
    with serving("127.0.0.1:0", demoted_status) as server:
        address = ("127.0.0.1", server.port)
        slots = metrics.MAX_CONCURRENT_REQUESTS
        idle = [socket.create_connection(address, timeout=2) for _ in range(slots)]
        try:
            with socket.create_connection(address, timeout=2) as extra:
                # Closed at once, not after the 2 s a stalled request gets.
                assert recv_closed(extra, 1.0), "a request over the limit was not closed"
            started = time.monotonic()
            assert all(recv_closed(s, 10.0) for s in idle), "stalled requests kept"
            assert time.monotonic() - started < 5.0
        finally:
            for s in idle:
                s.close()

        def scrape() -> str | None:
            try:
                return fetch(f"http://127.0.0.1:{server.port}/metrics", timeout=2)[2]
            except (urllib.error.URLError, ConnectionError):
                return None

        assert "carpd_demoted 1.0" in poll(scrape, 5.0, "scrape after the flood")
    assert capfd.readouterr().err == ""  # timeouts and hang-ups are not printed


def test_the_supervisor_side_is_never_called_from_the_http_thread() -> None:
    """get_status is all the server calls, from its own threads only."""
    callers: set[str] = set()

    def get_status() -> Status:
        callers.add(threading.current_thread().name)
        return demoted_status()

    with serving("127.0.0.1:0", get_status) as server:
        fetch(f"http://127.0.0.1:{server.port}/metrics")
    assert callers
    assert threading.main_thread().name not in callers


# --- a real Prometheus scrapes the endpoint ------------------------------------------------


def test_a_real_prometheus_scrapes_and_evaluates_the_rules(tmp_path: Path) -> None:
    status = demoted_status(since=time.time() - 3600)  # demoted for an hour: an alert fires
    with (
        serving("127.0.0.1:0", lambda: status) as server,
        running_prometheus(tmp_path, [f"127.0.0.1:{server.port}"], RULES) as prom,
    ):
        query, web = prom.query, prom.port
        result = poll(lambda: query("carpd_demoted"), 30, "carpd_demoted in Prometheus")
        assert len(result) == 1
        assert result[0]["metric"] == {
            "__name__": "carpd_demoted",
            "instance": f"127.0.0.1:{server.port}",
            "job": "carpd-py",
        }
        assert result[0]["value"][1] == "1"
        masters = query('carpd_carp_state{state="master"} == 1') or []
        assert [(r["metric"]["interface"], r["metric"]["vhid"]) for r in masters] == [
            ("carp1", "2")
        ]
        assert (query('up{job="carpd-py"}') or [{}])[0]["value"][1] == "1"
        reason = query('carpd_demotion_reason{reason="sync"}') or [{}]
        assert reason[0]["value"][1] == "1"
        inf = query('carpd_probe_duration_seconds_bucket{check="sync", le="+Inf"}') or [{}]
        assert inf[0]["value"][1] == "3"
        assert float((query("process_resident_memory_bytes") or [{}])[0]["value"][1]) > 0

        alert = poll(lambda: prom.alert("CarpdDemotedLong"), 30, "CarpdDemotedLong alert")
        assert alert["state"] == "firing"
        assert alert["labels"]["severity"] == "warning"
        groups = api(web, "/api/v1/rules")["groups"]
        health = {r["name"]: r["health"] for g in groups for r in g["rules"]}
        assert set(health.values()) <= {"ok", "unknown"}, health
        assert "CarpSplitBrain" in health


# --- the pair ---------------------------------------------------------------------------------


def test_no_peer_series_without_a_peer_table() -> None:
    s = samples_of(exposition(demoted_status()))
    assert not [name for name, _ in s if name.startswith(("carpd_peer_", "carpd_pair_"))]


def test_peer_and_pair_series() -> None:
    pair = PairStatus(
        state="up",
        seen=0.4,
        withheld=("sync",),
        split_brain=(10, 20),
        split=True,
        rejected=MappingProxyType({"auth": 3}),
        dropped_sections=MappingProxyType({("verify", "format"): 2}),
    )
    s = samples_of(exposition(replace(demoted_status(), pair=pair)))
    assert get(s, "carpd_peer_up") == 1
    assert get(s, "carpd_peer_state", state="up") == 1
    assert get(s, "carpd_peer_state", state="rejected") == 0
    assert get(s, "carpd_peer_last_message_age_seconds") == 0.4
    assert get(s, "carpd_peer_rejected_messages_total", why="auth") == 3
    assert get(s, "carpd_peer_rejected_messages_total", why="replay") == 0
    dropped = "carpd_peer_dropped_sections_total"
    assert get(s, dropped, section="verify", why="format") == 2
    assert get(s, dropped, section="verify", why="size") == 0
    assert get(s, "carpd_pair_withheld", reason="sync") == 1
    assert get(s, "carpd_pair_withheld", reason="upstream:isp") == 0
    assert ("carpd_pair_withheld", L(reason="maintenance")) not in s  # never withheld
    assert get(s, "carpd_pair_split_brain") == 2
    assert get(s, "carpd_pair_split") == 1
    silent = samples_of(exposition(replace(demoted_status(), pair=PairStatus(state="unknown"))))
    assert get(silent, "carpd_peer_up") == 0
    assert ("carpd_peer_last_message_age_seconds", L()) not in silent


def test_slow_clients_are_cut_at_the_request_deadline_and_never_lock_prometheus_out(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Four clients that send a header line every 0.5 s (never the blank line that ends the
    request): scrapes go on meanwhile, and each is closed at the deadline on the whole
    request, however often it sends (issue 9, item 9)."""
    monkeypatch.setattr(metrics._Handler, "deadline", 2.0)
    stop = threading.Event()

    def drip(s: socket.socket) -> None:
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            while not stop.wait(0.5):
                s.sendall(b"X-Slow: 1\r\n")
        except OSError:  # closed by the server
            return

    with serving("127.0.0.1:0", demoted_status) as server:
        address = ("127.0.0.1", server.port)
        slow = [socket.create_connection(address, timeout=2) for _ in range(4)]
        threads = [threading.Thread(target=drip, args=(s,), daemon=True) for s in slow]
        try:
            for t in threads:
                t.start()
            started = time.monotonic()
            for _ in range(5):
                body = fetch(f"http://127.0.0.1:{server.port}/metrics", timeout=5)[2]
                assert "carpd_demoted 1.0" in body
            assert all(recv_closed(s, 10.0) for s in slow), "a slow client kept its slot"
            assert time.monotonic() - started < 8.0  # 2 s, not 10 s per line forever
        finally:
            stop.set()
            for t in threads:
                t.join(5)
            for s in slow:
                s.close()
    assert capfd.readouterr().err == ""


# --- the HTTP answers (what prometheus_client's WSGI app answered) -------------------------


def split_answer(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *fields = head.decode("latin-1").split("\r\n")
    return status, dict(f.split(": ", 1) for f in fields), body


def test_a_get_is_answered_with_prometheus_clients_text_format() -> None:
    registry = make_registry(demoted_status)
    status, fields, body = split_answer(
        metrics.respond(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*", registry)
    )
    assert status == "HTTP/1.0 200 OK"
    assert fields["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert fields["Content-Length"] == str(len(body))
    assert "Content-Encoding" not in fields

    def carpd(text: bytes) -> Samples:  # process_* move between two collections
        return {k: v for k, v in samples_of(text.decode()).items() if k[0].startswith("carpd_")}

    assert carpd(body) == carpd(generate_latest(registry))


def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    """Prometheus's Accept header, as it sends it: OpenMetrics first, as the WSGI app did."""
    accept = (
        b"Accept: application/openmetrics-text;version=1.0.0;q=0.5,"
        b"application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,"
        b"*/*;q=0.2"
    )
    registry = make_registry(demoted_status)
    _, fields, body = split_answer(metrics.respond(b"GET /metrics HTTP/1.1\r\n" + accept, registry))
    assert fields["Content-Type"].startswith("application/openmetrics-text;")
    assert body.endswith(b"# EOF\n")
    names = {f.name for f in parse_openmetrics(body.decode())}
    assert {"carpd_demotions", "carpd_carp_state"} <= names


def test_gzip_when_the_scraper_accepts_it() -> None:
    head = b"GET /metrics HTTP/1.1\r\nAccept-Encoding: deflate, GZIP;q=1.0"
    _, fields, body = split_answer(metrics.respond(head, make_registry(demoted_status)))
    assert fields["Content-Encoding"] == "gzip"
    assert int(fields["Content-Length"]) == len(body)
    assert b"carpd_demoted 1.0\n" in gzip.decompress(body)


@pytest.mark.parametrize(
    ("head", "status", "allow", "body"),
    [
        (b"OPTIONS /metrics HTTP/1.1", "HTTP/1.0 200 OK", "OPTIONS,GET", b""),
        (
            b"POST /metrics HTTP/1.1\r\nContent-Length: 0",
            "HTTP/1.0 405 Method Not Allowed",
            "OPTIONS,GET",
            b"# HTTP 405 Method Not Allowed: POST; use OPTIONS or GET\n",
        ),
        (b"GET /favicon.ico HTTP/1.1", "HTTP/1.0 200 OK", None, b""),
        (b"nonsense", "HTTP/1.0 400 Bad Request", None, b""),
        (b"", "HTTP/1.0 400 Bad Request", None, b""),
    ],
)
def test_other_requests(head: bytes, status: str, allow: str | None, body: bytes) -> None:
    class Untouchable(CollectorRegistry):
        def collect(self) -> Iterator[Metric]:
            raise AssertionError("collected for a request that does not get the metrics")

    got_status, fields, got_body = split_answer(metrics.respond(head, Untouchable()))
    assert (got_status, fields.get("Allow"), got_body) == (status, allow, body)


def test_a_head_too_long_is_refused() -> None:
    with serving("127.0.0.1:0", demoted_status) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Big: " + b"y" * 20000 + b"\r\n\r\n")
            answer = b""
            try:
                while chunk := s.recv(4096):
                    answer += chunk
            except ConnectionResetError:  # closed with some of the head unread: a reset
                pass
        assert answer == b"" or answer.startswith(b"HTTP/1.0 400 Bad Request\r\n")


def test_a_failing_collector_gets_an_error_page_and_no_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    def broken() -> Status:
        raise RuntimeError("a bug")

    with serving("127.0.0.1:0", broken) as server:
        with pytest.raises(urllib.error.HTTPError) as caught:
            fetch(f"http://127.0.0.1:{server.port}/metrics")
        assert caught.value.code == 500
        caught.value.close()
    assert capfd.readouterr().err == ""
