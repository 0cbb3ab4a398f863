"""The Prometheus endpoint: the latest Status as metrics, served from its own thread.

The HTTP thread reads only what `get_status()` returns: the immutable `Status` the supervisor
swaps in by one reference assignment after every round. It never touches the supervisor, takes
no lock the supervisor takes, and calls nothing in trio. The metric families built from one
Status are cached until the next one is published, so a scraper that floods the endpoint costs
a text rendering per request, not a rebuild. The server bounds how many requests it serves at
once (MAX_CONCURRENT_REQUESTS; more are closed at once) and how long one request may take in
all, from accept to the last byte of the answer (REQUEST_DEADLINE, however often the client
sends a byte), so neither a flood nor slow clients can pile up threads, and a few slow clients
leave most of the slots to Prometheus.

Series (all from the Status; none is pushed by the supervisor):

==========================================  ================================================
carpd_build_info{version}                   1
carpd_demote_info{method,group}             1; the configured demotion method and group
carpd_carp_state{interface,vhid,state}      0/1 per state "init", "backup", "master" (all 0
                                            for a state ifconfig printed as <UNKNOWN>)
carpd_carp_advskew{interface,vhid}          advskew on the host, as last read
carpd_carp_group_demote{group}              the demote counter of each group read
carpd_carp_preempt                          net.inet.carp.preempt, once read
carpd_host_read_ok                          1 the last host read worked, 0 it failed; the carp
                                            series above then show the last good read
carpd_host_read_errors_total                host reads that failed
carpd_demoted                               0/1
carpd_demoted_since_seconds                 unix time of the demotion (only while demoted)
carpd_demotion_reason{reason}               0/1 for every possible reason: "sync" (if sync
                                            is configured), "upstream:NAME", "maintenance"
carpd_maintenance                           0/1
carpd_baseline_advskew{interface,vhid}      the operator's advskew carpd-py restores
carpd_demote_share{group}                   method carpdemote: our share of the counter
carpd_demotions_total{reason}               0 for every possible reason from the start
carpd_restores_total
carpd_carp_transitions_total{interface,vhid,from,to}  states lower-case
carpd_check_up{check}                       1 up, 0 down; NO series until the first verdict
carpd_sync_up                               the "sync" check; only with [sync] configured,
                                            and like carpd_check_up absent until a verdict
carpd_probe_duration_seconds{check}         histogram
carpd_probe_failures_total{check,target}
carpd_poll_duration_seconds                 histogram; its _count is the rounds done
carpd_command_errors_total{command}         0 for "ifconfig" from the start
carpd_state_write_errors_total              writes of the state file that failed (each
                                            holds back what it would have recorded)
carpd_warnings                              how many `carpctl inspect` warnings hold now
carpd_peer_up                               with [peer] only: 1 a valid message from the peer
                                            within peer.timeout, 0 not (it decides alone)
carpd_peer_state{state}                     0/1 per "up", "unknown", "rejected"
carpd_peer_last_message_age_seconds         seconds since the peer's last valid message
                                            (absent before the first)
carpd_peer_rejected_messages_total{why}     "size", "auth", "format", "version", "self",
                                            "replay"; all from the start
carpd_peer_dropped_sections_total{section,why}  an optional section ("verify": the report
                                            for carpctl verify) left out of a message, the
                                            message kept: why "size" (this node's would
                                            have been too large), "format" (the peer's
                                            failed the check); all from the start
carpd_pair_withheld{reason}                 0/1 per possible reason: not acted on because the
                                            peer has it too (or it is the peer's own fault)
carpd_pair_split_brain                      how many vhids are MASTER on both nodes (settled)
carpd_pair_split                            1 the managed VIPs are MASTER partly here, partly
                                            on the peer (settled), else 0
process_*                                   cpu_seconds_total, resident_memory_bytes,
                                            virtual_memory_bytes, open_fds, max_fds,
                                            start_time_seconds: from psutil and getrlimit,
                                            so they work on OpenBSD (no /proc there)
==========================================  ================================================

A check without a verdict has no `carpd_check_up` series (rather than NaN, which compares
false everywhere and breaks sum()): an alert on `carpd_check_up == 0` waits for a verdict,
as the decision does.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import resource
import select
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import psutil
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import __version__
from .decide import MAINTENANCE
from .pairing import PairStatus
from .peer import REJECTS
from .rounds import SYNC, check_names
from .supervisor import Status
from .telemetry import HistogramSnapshot
from .verifier import SECTION

__all__ = [
    "MetricsServer",
    "ProcessCollector",
    "StatusCollector",
    "make_registry",
    "metric_families",
    "parse_listen",
    "start_metrics_server",
    "stop_metrics_server",
]

CARP_STATES = ("init", "backup", "master")
COMMANDS = ("ifconfig",)
SECTION_DROPS = ((SECTION, "format"), (SECTION, "size"))  # series present from the start
PEER_STATES = ("up", "unknown", "rejected")  # command_errors_total series present from the start

MAX_CONCURRENT_REQUESTS = 16  # more at once are closed without an answer
REQUEST_DEADLINE = 5.0  # seconds for a whole request, accept to answer sent; then dropped


# Bucket bounds spelled as prometheus_client spells them ("0.005", "1.0"): le labels match.
_le: Callable[[float], str] = floatToGoString


def _state(text: str) -> str:
    """carp state as a label value: "MASTER" -> "master", "<UNKNOWN>" -> "unknown"."""
    return text.strip("<>").lower()


def _histogram(
    name: str, doc: str, series: Mapping[tuple[str, ...], HistogramSnapshot], labels: list[str]
) -> HistogramMetricFamily:
    """Per-bucket counts (telemetry) into the cumulative buckets Prometheus wants."""
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, snap in series.items():
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(snap.buckets, snap.counts, strict=False):
            running += n
            buckets.append((_le(bound), running))
        # counts has one more entry than buckets: the observations above the last bound.
        buckets.append(("+Inf", sum(snap.counts)))
        family.add_metric(list(values), buckets, snap.total)
    return family


def metric_families(status: Status) -> list[Metric]:
    """Every carpd_* family for one Status. Pure: reads the frozen Status only."""
    config, memory, tele, view = status.config, status.memory, status.telemetry, status.view
    out: list[Metric] = []

    def gauge(name: str, doc: str, value: float | None = None) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, value=value)
        out.append(family)
        return family

    def labelled(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=labels)
        out.append(family)
        return family

    def counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=labels)
        out.append(family)
        return family

    labelled("carpd_build_info", "carpd-py version.", ["version"]).add_metric([__version__], 1)
    labelled(
        "carpd_demote_info", "The configured demotion method and carp group.", ["method", "group"]
    ).add_metric([config.demote.method, config.demote.group], 1)

    # --- the host, as last read ---------------------------------------------------------
    if view is not None:
        state = labelled(
            "carpd_carp_state",
            "carp state of each vhid: 1 for the state it is in, 0 for the others.",
            ["interface", "vhid", "state"],
        )
        advskew = labelled(
            "carpd_carp_advskew", "advskew of each vhid on the host.", ["interface", "vhid"]
        )
        for iface in view.carp:
            assert iface.carp is not None
            for node in iface.carp.nodes:
                vhid = str(node.vhid)
                now = _state(node.state)
                for s in CARP_STATES:
                    state.add_metric([iface.name, vhid, s], 1 if s == now else 0)
                advskew.add_metric([iface.name, vhid], node.advskew)
        demote = labelled(
            "carpd_carp_group_demote", "carp demote counter of each interface group.", ["group"]
        )
        for group, count in sorted(view.group_demote.items()):
            demote.add_metric([group], count)
        preempt = view.sysctl.get("net.inet.carp.preempt")
        if preempt is not None:
            gauge("carpd_carp_preempt", "sysctl net.inet.carp.preempt on the host.", preempt)
    if view is not None or status.read_error is not None:
        gauge(
            "carpd_host_read_ok",
            "1 if the last read of the host (ifconfig, sysctl) worked, 0 if it failed.",
            0 if status.read_error is not None else 1,
        )
    counter("carpd_host_read_errors", "Reads of the host that failed.", []).add_metric(
        [], tele.read_errors
    )

    # --- the decision ---------------------------------------------------------------------
    gauge("carpd_demoted", "1 while carpd-py holds this node demoted.", int(memory.demoted))
    if memory.demoted and memory.since is not None:
        gauge(
            "carpd_demoted_since_seconds",
            "Unix time the current demotion was applied.",
            memory.since,
        )
    reasons = labelled(
        "carpd_demotion_reason",
        "1 for each reason the node is demoted for now, 0 for the other possible reasons.",
        ["reason"],
    )
    possible = sorted({*check_names(config), MAINTENANCE, *memory.reasons})
    for reason in possible:
        reasons.add_metric([reason], int(reason in memory.reasons))
    gauge("carpd_maintenance", "1 while maintenance mode is on.", int(memory.maintenance))
    baseline = labelled(
        "carpd_baseline_advskew",
        "The operator's advskew of each managed vhid, restored on recovery.",
        ["interface", "vhid"],
    )
    for (name, vhid_number), rec in sorted(memory.vhids.items()):
        baseline.add_metric([name, str(vhid_number)], rec.baseline)
    if config.demote.method == "carpdemote":
        labelled(
            "carpd_demote_share",
            "carpd-py's own share of the group demote counter.",
            ["group"],
        ).add_metric([config.demote.group], memory.share)

    demotions = counter(
        "carpd_demotions", "Demotions, by reason (a reason joining one counts too).", ["reason"]
    )
    for reason in sorted({*possible, *tele.demotions}):
        demotions.add_metric([reason], tele.demotions.get(reason, 0))
    counter("carpd_restores", "Restores of the baselines after a demotion.", []).add_metric(
        [], tele.restores
    )
    transitions = counter(
        "carpd_carp_transitions",
        "carp state changes seen between two reads of the host.",
        ["interface", "vhid", "from", "to"],
    )
    for (name, vhid_number, before, after), n in sorted(tele.transitions.items()):
        transitions.add_metric([name, str(vhid_number), _state(before), _state(after)], n)

    # --- checks and probes -----------------------------------------------------------------
    check_up = labelled(
        "carpd_check_up", "1 if the check is up, 0 if down (no series before a verdict).", ["check"]
    )
    for name, check in sorted(status.checks.items()):
        if check.up is not None:
            check_up.add_metric([name], int(check.up))
    if config.sync is not None:
        sync = status.checks.get(SYNC)
        if sync is not None and sync.up is not None:
            gauge("carpd_sync_up", "1 if the pfsync check is up, 0 if down.", int(sync.up))
    out.append(
        _histogram(
            "carpd_probe_duration_seconds",
            "How long each round of a check's probes took.",
            {(k,): h for k, h in sorted(tele.probe_durations.items())},
            ["check"],
        )
    )
    failures = counter(
        "carpd_probe_failures", "Probes that failed, by check and target.", ["check", "target"]
    )
    for (name, target), n in sorted(tele.probe_failures.items()):
        failures.add_metric([name, target], n)
    out.append(
        _histogram(
            "carpd_poll_duration_seconds",
            "How long each supervisor round took (read, probe, decide, act).",
            {(): tele.poll_durations},
            [],
        )
    )
    errors = counter("carpd_command_errors", "Commands that failed, by command.", ["command"])
    for command in sorted({*COMMANDS, *tele.command_errors}):
        errors.add_metric([command], tele.command_errors.get(command, 0))
    counter(
        "carpd_state_write_errors",
        "Writes of the state file that failed; what they would have recorded waits.",
        [],
    ).add_metric([], tele.state_write_errors)
    gauge(
        "carpd_warnings", "Problems an admin must fix (see carpctl inspect).", len(status.warnings)
    )
    if status.pair is not None:
        out.extend(pair_families(status.pair, possible))
    return out


def pair_families(pair: PairStatus, possible: Iterable[str]) -> list[Metric]:
    """The peer and the pair (only with [peer] configured)."""
    out: list[Metric] = [
        GaugeMetricFamily(
            "carpd_peer_up",
            "1 if a valid message came from the peer within peer.timeout, else 0.",
            int(pair.state == "up"),
        )
    ]
    state = GaugeMetricFamily(
        "carpd_peer_state",
        "1 for the state of the peer channel, 0 for the others.",
        labels=["state"],
    )
    for s in PEER_STATES:
        state.add_metric([s], int(s == pair.state))
    out.append(state)
    if pair.seen is not None:
        out.append(
            GaugeMetricFamily(
                "carpd_peer_last_message_age_seconds",
                "Seconds since the last valid message from the peer.",
                pair.seen,
            )
        )
    rejected = CounterMetricFamily(
        "carpd_peer_rejected_messages", "Messages from the peer dropped, by why.", labels=["why"]
    )
    for why in sorted({*REJECTS, *pair.rejected}):
        rejected.add_metric([why], pair.rejected.get(why, 0))
    out.append(rejected)
    dropped = CounterMetricFamily(
        "carpd_peer_dropped_sections",
        "Optional message sections left out, by section and why: size (this node's message "
        "would have been too large), format (the peer's section failed the check).",
        labels=["section", "why"],
    )
    for section, why in sorted({*SECTION_DROPS, *pair.dropped_sections}):
        dropped.add_metric([section, why], pair.dropped_sections.get((section, why), 0))
    out.append(dropped)
    withheld = GaugeMetricFamily(
        "carpd_pair_withheld",
        "1 for each reason not acted on because the peer has it too, 0 for the others.",
        labels=["reason"],
    )
    for reason in sorted({*possible, *pair.withheld} - {MAINTENANCE}):
        withheld.add_metric([reason], int(reason in pair.withheld))
    out.append(withheld)
    out.append(
        GaugeMetricFamily(
            "carpd_pair_split_brain",
            "How many vhids are MASTER on both nodes of the pair.",
            len(pair.split_brain),
        )
    )
    out.append(
        GaugeMetricFamily(
            "carpd_pair_split",
            "1 if the managed VIPs are MASTER partly on this node, partly on the peer.",
            int(pair.split),
        )
    )
    return out


class StatusCollector(Collector):
    """carpd_* from the latest Status; the families are rebuilt only when it changes."""

    def __init__(self, get_status: Callable[[], Status]) -> None:
        self._get_status = get_status
        # (status, families): one tuple swapped in whole, so concurrent scrapes are safe.
        self._cache: tuple[Status, list[Metric]] | None = None

    def collect(self) -> Iterable[Metric]:
        status = self._get_status()
        cache = self._cache
        if cache is not None and cache[0] is status:
            return cache[1]
        families = metric_families(status)
        self._cache = (status, families)
        return families


class ProcessCollector(Collector):
    """The standard process_* series from psutil and getrlimit, which work without /proc."""

    def __init__(self) -> None:
        self._process: Any = None
        self._pid = -1

    def _proc(self) -> Any:
        pid = os.getpid()
        if pid != self._pid:  # created before a fork (daemon -d): follow the new process
            self._process, self._pid = psutil.Process(pid), pid
        return self._process

    def collect(self) -> Iterable[Metric]:
        out: list[Metric] = []
        try:
            proc = self._proc()
        except psutil.Error:
            return out

        def read(get: Callable[[], float]) -> float | None:
            try:
                return float(get())
            except (psutil.Error, AttributeError, NotImplementedError, OSError):
                return None  # not available on this platform: leave the series out

        with proc.oneshot():
            cpu = read(lambda: proc.cpu_times().user + proc.cpu_times().system)
            rss = read(lambda: proc.memory_info().rss)
            vms = read(lambda: proc.memory_info().vms)
            start = read(proc.create_time)
            fds = read(proc.num_fds)
        max_fds = read(_max_fds)
        if cpu is not None:
            out.append(
                CounterMetricFamily(
                    "process_cpu_seconds", "Total user and system CPU time spent in seconds.", cpu
                )
            )
        for name, doc, value in (
            ("process_resident_memory_bytes", "Resident memory size in bytes.", rss),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes.", vms),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                start,
            ),
            ("process_open_fds", "Number of open file descriptors.", fds),
            ("process_max_fds", "Maximum number of open file descriptors.", max_fds),
        ):
            if value is not None:
                out.append(GaugeMetricFamily(name, doc, value))
        return out


def _max_fds() -> float:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        raise NotImplementedError("no limit")
    return float(soft)


def make_registry(
    get_status: Callable[[], Status], extra: Iterable[Collector] = ()
) -> CollectorRegistry:
    """A registry of our own (never the global one): carpd_* and process_* only."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(get_status))
    registry.register(ProcessCollector())
    for collector in extra:
        registry.register(collector)
    return registry


# --- the HTTP server --------------------------------------------------------------------

_LISTEN = re.compile(
    r"\[(?P<v6>[^\]]+)\]:(?P<port>[0-9]{1,5})|(?P<host>[^:\[\]]+):(?P<port4>[0-9]{1,5})"
)


def parse_listen(listen: str) -> tuple[str, int]:
    """ "127.0.0.1:9723" -> ("127.0.0.1", 9723); "[::1]:9723" -> ("::1", 9723). As in the
    config, HOST is an IP address ([bracketed] for IPv6) or localhost, so binding never waits
    on DNS. Port 0 (any free port) is accepted here, for tests. An empty HOST is refused: only
    an explicit "0.0.0.0:PORT" or "[::]:PORT" listens on every address."""
    m = _LISTEN.fullmatch(listen)
    if m is None:
        raise ValueError(f"metrics.listen: expected HOST:PORT or [IPv6]:PORT, not {listen!r}")
    host = m["v6"] if m["v6"] is not None else m["host"]
    port = int(m["port"] if m["port"] is not None else m["port4"])
    if port > 65535:
        raise ValueError(f"metrics.listen: port must be at most 65535, not {port}")
    if host != "localhost" or m["v6"] is not None:
        try:
            version = ipaddress.ip_address(host).version
        except ValueError:
            raise ValueError(
                f"metrics.listen: {host!r} is not an IP address or localhost"
            ) from None
        if version != (6 if m["v6"] is not None else 4):
            raise ValueError(f"metrics.listen: IPv6 addresses go in [brackets], not {listen!r}")
    return host, port


# The endpoint speaks just enough HTTP/1.0 for a scraper, as prometheus_client's WSGI app
# answers: one request a connection, any path the metrics (all of them: its `?name[]=`
# filter found no names in our registry, which does not describe its collectors), in the
# format the Accept header asks for (prometheus_client's choose_encoder: its text format, or
# OpenMetrics), gzipped if accepted; /favicon.ico an empty page, OPTIONS the allowed methods,
# any other method 405. The body is prometheus_client's rendering; the HTTP around it is
# these few lines (bounded threads, one deadline a request, a 500 when a collector raises)
# rather than wsgiref's server subclassed to get those bounds.

HEAD_LIMIT = 16384  # bytes of request line and headers; a longer head is answered 400
LISTEN_BACKLOG = 64  # room for a burst beyond the slots
ALLOW = "OPTIONS,GET"
REASONS = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed", 500: "Internal Server Error"}


def _gzip_accepted(accept_encoding: str) -> bool:
    return "gzip" in (e.split(";")[0].strip().lower() for e in accept_encoding.split(","))


def respond(head: bytes, registry: CollectorRegistry) -> bytes:
    """The whole answer to a request `head` (request line and headers): status line, headers,
    body. Pure but for the registry, which is collected only for a GET of the metrics."""
    lines = head.decode("latin-1").splitlines()
    words = lines[0].split() if lines else []
    if len(words) not in (2, 3):
        return _answer(400, [], b"")
    method, target = words[0], words[1]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    if method == "OPTIONS":
        return _answer(200, [("Allow", ALLOW)], b"")
    if method != "GET":
        body = f"# HTTP 405 Method Not Allowed: {method}; use OPTIONS or GET\n".encode()
        return _answer(405, [("Allow", ALLOW)], body)
    if target.split("?", 1)[0] == "/favicon.ico":
        return _answer(200, [], b"")
    encoder, content_type = choose_encoder(headers.get("accept", ""))
    body = encoder(registry)
    fields = [("Content-Type", content_type)]
    if _gzip_accepted(headers.get("accept-encoding", "")):
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip wrapper
        body = packer.compress(body) + packer.flush()
        fields.append(("Content-Encoding", "gzip"))
    return _answer(200, fields, body)


def _answer(code: int, fields: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.0 {code} {REASONS[code]}"]
    lines += [f"{name}: {value}" for name, value in fields]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def _left(end: float) -> float:
    left = end - time.monotonic()
    if left <= 0:
        raise TimeoutError("past the request deadline")
    return left


class _Handler:
    """One connection: read the request head, answer, close; all of it within `deadline`
    (a socket timeout alone restarts with each line a slow client sends)."""

    deadline = REQUEST_DEADLINE  # for the whole request, accept to the last byte sent

    def __init__(self, conn: socket.socket, registry: CollectorRegistry) -> None:
        self.conn = conn
        self.registry = registry

    def handle(self) -> None:
        end = time.monotonic() + self.deadline
        try:
            head = self._read_head(end)
            if head is not None:
                try:
                    answer = respond(head, self.registry)
                except Exception:  # a collector's bug: an error page, never a traceback
                    answer = _answer(500, [], b"")
                self.conn.settimeout(_left(end))
                self.conn.sendall(answer)  # bounded by the timeout
        except OSError:  # a scraper that stalled (TimeoutError) or hung up: nothing to say
            pass
        finally:
            self.conn.close()

    def _read_head(self, end: float) -> bytes | None:
        data = b""
        while True:
            for mark in (b"\r\n\r\n", b"\n\n"):
                at = data.find(mark)
                if 0 <= at <= HEAD_LIMIT:
                    return data[:at]
            if len(data) > HEAD_LIMIT:
                return b""  # answered 400
            self.conn.settimeout(_left(end))
            chunk = self.conn.recv(4096)
            if not chunk:
                return None  # closed before the end of the request: no answer
            data += chunk


class MetricsServer:
    """The endpoint: one thread accepts, each request is served by a thread of its own, at
    most MAX_CONCURRENT_REQUESTS at once (more are closed at once), REQUEST_DEADLINE for a
    whole request. No reverse DNS at bind time, no SO_REUSEPORT (a second daemon must not
    share the port silently). The accepting thread sleeps until a connection or stop()."""

    def __init__(
        self,
        address: tuple[Any, ...],
        family: socket.AddressFamily,
        registry: CollectorRegistry,
    ) -> None:
        self.address_family = family
        self.registry = registry
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(address)
            self.socket.listen(LISTEN_BACKLOG)
            self.socket.setblocking(False)
        except OSError:
            self.socket.close()
            raise
        self.server_address: tuple[Any, ...] = self.socket.getsockname()
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)
        self._wake, self._waker = socket.socketpair()
        self._stopping = False

    @property
    def port(self) -> int:
        """The port bound, the real one when asked for port 0."""
        return int(self.server_address[1])

    def serve_forever(self) -> None:
        """Accept until stop()."""
        listening, wake = self.socket, self._wake
        while True:
            ready, _, _ = select.select([listening, wake], [], [])
            if self._stopping:
                return
            if listening not in ready:
                continue
            try:
                conn, _ = listening.accept()
            except BlockingIOError:  # the client left between select and accept
                continue
            except OSError:  # out of descriptors or memory: let the scraper retry later
                time.sleep(0.1)
                continue
            self._dispatch(conn)

    def _dispatch(self, conn: socket.socket) -> None:
        if not self._slots.acquire(blocking=False):
            conn.close()  # too many at once: the scraper will retry
            return
        try:
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
        except RuntimeError:  # no thread to be had: as if over the limit
            self._slots.release()
            conn.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            _Handler(conn, self.registry).handle()
        finally:
            self._slots.release()

    def stop(self) -> None:
        """Make serve_forever return (from any thread)."""
        self._stopping = True
        with contextlib.suppress(OSError):  # closed: serve_forever is on its way out anyway
            self._waker.send(b"x")

    def close(self) -> None:
        """Close the listening socket (after serve_forever has returned)."""
        self.socket.close()
        self._wake.close()
        self._waker.close()


def start_metrics_server(
    listen: str, get_status: Callable[[], Status], extra: Iterable[Collector] = ()
) -> tuple[MetricsServer, threading.Thread]:
    """Serve the metrics on `listen` ("HOST:PORT", "[IPv6]:PORT"; port 0: any free port,
    see `server.port`) from a daemon thread. Stop with `stop_metrics_server(server, thread)`.
    Raises ValueError for a bad `listen` ("" means off: do not call this then) and OSError
    when the address cannot be bound."""
    host, port = parse_listen(listen)
    # An IP literal never touches DNS; localhost comes from /etc/hosts. The whole sockaddr is
    # kept: an IPv6 link-local address needs its scope ("[fe80::1%em0]:9723").
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, _, _, sockaddr = infos[0]
    server = MetricsServer(tuple(sockaddr), family, make_registry(get_status, extra))
    thread = threading.Thread(target=server.serve_forever, name="carpd-metrics", daemon=True)
    thread.start()
    return server, thread


def stop_metrics_server(
    server: MetricsServer, thread: threading.Thread, timeout: float = 5.0
) -> None:
    """Stop accepting, wait (at most `timeout`) for the thread, close the socket."""
    server.stop()
    thread.join(timeout)
    server.close()
