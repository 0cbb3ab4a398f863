"""The daemon's side of the handbook's checks: the slow reads every [verify] interval.

Off the hot path: its own task, each read under a deadline; the supervisor's loop never waits
for it. It keeps the last document (for `carpctl status` and the metrics) and its own report
(for `carpctl verify` and, over the pair channel, for the peer). A check that turns
to failure is logged at notice; one that comes back, at notice too.

The pair channel carries this node's report in the "verify" section of every message it sends
(`section`), and the peer's comes back through `peer_source`: the section of the peer's last
message, checked field by field on arrival (`check_section`), and when the peer read it, with
the carp roles of the view that came with it (`with_roles`: a report is up to an interval old,
the view one round).

A failure the last run did not have is believed only when a second run, CONFIRM seconds later,
sees it too: during a failover the two nodes' reads, taken apart, show a vhid MASTER on both
or on none for a moment, and that is carp at work, not the handbook's MASTER/MASTER.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .config import Config
from .logsetup import Log
from .model import HostView
from .verify import FAILURE, NodeReport, verify
from .verifyio import local_report

RESULT_VALUE = {"ok": 0, "warning": 1, "failure": 2}
SECTION = "verify"  # the name of the section in the pair channel's messages
AGE = "age"  # in the section: seconds since the sender read what its report says
CONFIRM = 3.0  # seconds (at least 3 rounds) before a new failure is run again and believed


def with_roles(section: Mapping[str, Any], roles: Mapping[tuple[str, int], Any]) -> dict[str, Any]:
    """The peer's report with the state and advskew of each vhid its latest view shows
    (`roles`: (interface, vhid) -> pair.Role)."""
    carp = []
    for entry in section.get("carp", ()):
        role = roles.get((entry["interface"], entry["vhid"]))
        now = {} if role is None else {"state": role.state, "advskew": role.advskew}
        carp.append({**entry, **now})
    return {**section, "carp": carp}


def check_section(data: Any) -> Any:
    """The peer's "verify" section as it came, if it is a node report with its age;
    ValueError otherwise (the channel then drops the section, counts and logs it)."""
    if not isinstance(data, Mapping):
        raise ValueError("not a node report: not an object")  # noqa: TRY004 (see from_json)
    age = data.get(AGE)
    if not isinstance(age, (int, float)) or isinstance(age, bool) or not 0 <= age < 1e9:
        raise ValueError(f"not a node report: bad {AGE!r}")
    NodeReport.from_json(data)
    return data


@dataclass(frozen=True)
class Verified:
    """One run of the checks, published as a whole."""

    at: float
    local: NodeReport
    peer: NodeReport | None
    document: Mapping[str, Any] = field(default_factory=dict)


class Verifier:
    def __init__(
        self,
        config: Config,
        log: Log,
        view: Callable[[], HostView | None],
        share: Callable[[], int],
        peer_source: Callable[[], tuple[Any, float] | None] | None = None,
    ) -> None:
        self.config = config
        self.log = log
        self._view = view
        self._share = share
        self.last: Verified | None = None
        self.latest: Verified | None = None  # the last run, confirmed or not: for the peer
        self.peer: NodeReport | None = None  # set by the pair channel: see peer_report()
        self.peer_at: float | None = None
        # (the "verify" section of the peer's last message, the trio time it arrived)
        self.peer_source = peer_source

    # --- the pair channel's side (issue 11): carry own_report() out, hand peer_report() in ----

    def own_report(self) -> dict[str, Any] | None:
        """This node's last report, as JSON, for the message to the peer."""
        return self.latest.local.to_json() if self.latest is not None else None

    def section(self) -> dict[str, Any]:
        """The optional sections of the next message to the peer: {"verify": own report
        and its age}, or none before the checks have run. The latest read, also while a new
        failure waits for its confirmation: the peer confirms its own way."""
        if self.latest is None:
            return {}
        age = max(0.0, trio.current_time() - self.latest.at)
        return {SECTION: {**self.latest.local.to_json(), AGE: round(age, 3)}}

    def peer_report(self, data: Any) -> bool:
        """Take the peer's report from the message; a bad one is logged and dropped."""
        try:
            self.peer = NodeReport.from_json(data)
        except ValueError as exc:
            self.log.warning("verify: the peer's report is refused", error=str(exc))
            return False
        self.peer_at = trio.current_time()
        return True

    def _pull_peer(self) -> None:
        # Taken afresh every run, even when the peer's report (and so `at`) is unchanged:
        # the roles come from the peer's latest view, which every message renews.
        got = self.peer_source() if self.peer_source is not None else None
        if got is None:
            return
        data, at = got
        if data is not None and self.peer_report(data):
            self.peer_at = at

    def _fresh_peer(self) -> NodeReport | None:
        """The peer's report unless it is older than three intervals (at least 3 minutes)."""
        if self.peer is None or self.peer_at is None:
            return None
        if trio.current_time() - self.peer_at > max(3 * self.config.verify.interval, 180.0):
            return None
        return self.peer

    async def _check(self) -> Verified:
        local = await local_report(self.config, self._share(), self._view())
        self._pull_peer()
        peer = self._fresh_peer()
        document = verify(local, peer, self.config)
        self.latest = Verified(trio.current_time(), local, peer, document)
        return self.latest

    def _new_failures(self, done: Verified) -> set[str]:
        before = self.last.document["checks"] if self.last is not None else []
        old = {c["check"] for c in before if c["result"] == FAILURE}
        return {c["check"] for c in done.document["checks"] if c["result"] == FAILURE} - old

    async def run_once(self, confirm: float = 0.0) -> Verified:
        """Run the checks and publish the result; with `confirm`, a failure the last result
        did not have is run again that many seconds later, and the second run is published."""
        done = await self._check()
        if confirm > 0 and self._new_failures(done):
            await trio.sleep(confirm)
            done = await self._check()
        self._log_edges(self.last, done)
        self.last = done
        return done

    def confirm(self) -> float:
        return max(CONFIRM, 3 * self.config.interval)

    def _log_edges(self, before: Verified | None, now: Verified) -> None:
        old = {c["check"]: c["result"] for c in before.document["checks"]} if before else {}
        for check in now.document["checks"]:
            was = old.get(check["check"], "ok")
            if check["result"] == FAILURE and was != FAILURE:
                seen = "; ".join(f"{n}: {w}" for n, w in check["nodes"].items())
                self.log.notice("verify: check failed", check=check["check"], seen=seen,
                                fix=check["fix"])  # fmt: skip
            elif was == FAILURE and check["result"] != FAILURE:
                self.log.notice("verify: check passes again", check=check["check"])

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            interval = self.config.verify.interval
            if interval <= 0:
                await trio.sleep(1.0)  # off; a reload may turn it on
                continue
            confirm = self.confirm()
            deadline = (self.config.platform.command_timeout * 2 + 1.0) * 2 + confirm
            with trio.move_on_after(deadline) as scope:
                try:
                    await self.run_once(confirm)
                except Exception as exc:  # a bug here must never stop the daemon
                    self.log.error("verify: the checks failed to run", error=repr(exc))
            if scope.cancelled_caught:
                self.log.warning("verify: the slow reads did not finish", seconds=deadline)
            await trio.sleep(interval)

    def answer(self) -> dict[str, Any]:
        """The control socket's `verify` answer: the peer's report as it is now (carpctl
        verify reads this node afresh, and compares it with the peer's latest roles)."""
        self._pull_peer()
        peer = self._fresh_peer()
        last = self.last
        return {
            "local": last.local.to_json() if last is not None else None,
            "peer": peer.to_json() if peer is not None else None,
            "document": dict(last.document) if last is not None else None,
        }


class VerifyCollector(Collector):
    """carpd_verify_* metrics from the last run of the checks."""

    def __init__(self, get: Callable[[], Verified | None]) -> None:
        self._get = get

    def collect(self) -> Iterable[GaugeMetricFamily]:
        last = self._get()
        if last is None:
            return []
        check = GaugeMetricFamily(
            "carpd_verify_check",
            "Result of each handbook check: 0 ok, 1 warning, 2 failure",
            labels=["check"],
        )
        for c in last.document["checks"]:
            check.add_metric([c["check"]], RESULT_VALUE[c["result"]])
        out = [check]
        reports = [r for r in (last.local, last.peer) if r is not None]
        states = GaugeMetricFamily("carpd_pf_states", "pf states (pfctl -si)", labels=["node"])
        for r in reports:
            if r.pf_states is not None:
                states.add_metric([r.node], r.pf_states)
        out.append(states)
        if last.local.pf_digest is not None:
            info = GaugeMetricFamily("carpd_pf_rules_info",
                                     "The digest of this node's loaded pf rules (pfctl -sr)",
                                     labels=["digest"])  # fmt: skip
            info.add_metric([last.local.pf_digest], 1)
            out.append(info)
        if last.peer is not None and None not in (last.local.pf_digest, last.peer.pf_digest):
            match = last.local.pf_digest == last.peer.pf_digest
            out.append(GaugeMetricFamily("carpd_pf_rules_match",
                                         "1 when both nodes have loaded the same pf rules",
                                         value=float(match)))  # fmt: skip
        up = GaugeMetricFamily("carpd_relay_hosts_up", "relayd hosts up per relay",
                               labels=["node", "relay"])  # fmt: skip
        total = GaugeMetricFamily("carpd_relay_hosts", "relayd hosts per relay",
                                  labels=["node", "relay"])  # fmt: skip
        for r in reports:
            for relay in r.relays:
                up.add_metric([r.node, relay.name], relay.up)
                total.add_metric([r.node, relay.name], relay.hosts)
        out += [up, total]
        return out
