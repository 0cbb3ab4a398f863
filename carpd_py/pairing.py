"""The pair in the supervisor's round. Shell glue between the channel (peer.py), the pure
pair rule (pair.py) and the decision (decide.py).

In every round, after the checks are stepped and before `decide`:

1. `adjust` builds this node's `NodeView`, takes the peer's last view from the channel (fresh
   if it is younger than `[peer] timeout`), notes which of my failing checks the peer has
   heard of (its message says which of mine it had heard when its round began), asks
   `pair.decide_pair`, logs what changed, and hands `decide` the reasons to withhold and
   whether to go one step deeper.
2. After the round (and whenever the status is published, e.g. maintenance switched on),
   `published` sends this node's view on every path, with the optional sections `sections()`
   returns (the daemon's: this node's `carpctl verify` report, see verifier.py); `heartbeat`
   resends the last view, with fresh sections.

The view document (the "view" section of a message, see peer.py):

    checks       name -> {"up": bool|null, "good": n, "bad": n, "fall": n, "rise": n,
                 "local": bool (sync only: this node's own SYNC link reads down)}
    reasons      the reasons that hold (checks down, maintenance)
    maintenance  bool
    demoted      bool, and "demoted_for": the reasons recorded at the demotion
    withheld     the reasons the pair withholds now
    carp         [{"interface", "vhid", "state", "advskew", "managed"}]
    demote_counter, preempt   the group's demote counter and net.inet.carp.preempt, or null
    interval     seconds between this node's rounds
    round        how many rounds this node has done (a resent view keeps its round)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import trio

from .config import Config
from .decide import Inputs, Memory
from .hysteresis import Check
from .inspect import managed_carp
from .logsetup import Log
from .model import HostView
from .pair import ALONE, CheckState, NodeView, PairDecision, Peer, Role, Verdict, decide_pair
from .peer import Channel
from .rounds import SYNC, check_params, sync_link_problem

if TYPE_CHECKING:
    from .supervisor import Status, Supervisor

SETTLE = 3  # rounds of the peer's a split must last before it is reported (a failover moves
# vhids one by one, and a view is as old as the read it was made from)


@dataclass(frozen=True)
class PairStatus:
    """What `carpctl status` and the metrics show about the pair."""

    state: str = "off"  # "up", "unknown", "rejected", "off"
    seen: float | None = None  # seconds since the last valid message
    view: Mapping[str, Any] | None = None  # the peer's last view document
    node: str | None = None
    withheld: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    split_brain: tuple[int, ...] = ()
    split: bool = False
    deeper: bool = False
    rejected: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    send_errors: int = 0
    # optional sections left out of a message: (section, "size" mine too large | "format"
    # the peer's failed its check) -> count
    dropped_sections: Mapping[tuple[str, str], int] = field(
        default_factory=lambda: MappingProxyType({})
    )


OFF = PairStatus()


# --- the view document, both ways -------------------------------------------------------------


def carp_entries(view: HostView | None, config: Config) -> list[dict[str, Any]]:
    if view is None:
        return []
    managed = {i.name for i in managed_carp(view, config)}
    return [
        {
            "interface": iface.name,
            "vhid": node.vhid,
            "state": node.state,
            "advskew": node.advskew,
            "managed": iface.name in managed,
        }
        for iface in view.carp
        if iface.carp is not None
        for node in iface.carp.nodes
    ]


def is_local(name: str, config: Config, view: HostView | None) -> bool:
    """Is a failure of check `name` this node's own? The sync check, when what this node
    read shows its own SYNC link down (pfsync down, syncdev missing or without carrier)."""
    if name != SYNC or config.sync is None or view is None:
        return False
    return sync_link_problem(view, config.sync) is not None


def view_document(
    config: Config,
    checks: Mapping[str, Check],
    params: Mapping[str, tuple[int, int]],
    memory: Memory,
    view: HostView | None,
    *,
    withheld: tuple[str, ...] = (),
    round_number: int = 0,
) -> dict[str, Any]:
    group = config.demote.group
    reasons = sorted(n for n, c in checks.items() if c.up is False)
    if memory.maintenance:
        reasons.append("maintenance")
    return {
        "checks": {
            name: {
                "up": c.up,
                "good": c.good,
                "bad": c.bad,
                "fall": params.get(name, (3, 3))[0],
                "rise": params.get(name, (3, 3))[1],
                "local": c.bad > 0 and is_local(name, config, view),
            }
            for name, c in checks.items()
        },
        "reasons": sorted(reasons),
        "maintenance": memory.maintenance,
        "demoted": memory.demoted,
        "demoted_for": list(memory.reasons),
        "withheld": list(withheld),
        "carp": carp_entries(view, config),
        "demote_counter": view.group_demote.get(group) if view is not None else None,
        "preempt": view.sysctl.get("net.inet.carp.preempt") if view is not None else None,
        "interval": config.interval,
        "round": round_number,
    }


def _int(v: Any, lo: int = 0, hi: int = 2**31) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError(f"not an integer from {lo} to {hi}: {v!r}")
    return v


def _str(v: Any, limit: int = 64) -> str:
    if not isinstance(v, str) or not 0 < len(v) <= limit:
        raise ValueError(f"not a short string: {v!r}")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"not true/false: {v!r}")
    return v


def parse_view(doc: Any, session: str = "") -> NodeView:
    """A peer's view document into the pair rule's NodeView; ValueError when malformed."""
    if not isinstance(doc, dict):
        raise TypeError("not an object")
    raw_checks = doc.get("checks")
    if not isinstance(raw_checks, dict) or len(raw_checks) > 256:
        raise ValueError("checks: not an object")
    checks = {}
    for name, c in raw_checks.items():
        if not isinstance(c, dict):
            raise TypeError(f"checks.{name}: not an object")
        up = c.get("up")
        if up is not None:
            _bool(up)
        checks[_str(name, 80)] = CheckState(
            up=up,
            bad=_int(c.get("bad")),
            fall=_int(c.get("fall"), 1, 100),
            local=_bool(c.get("local")),
            good=_int(c.get("good")),
            rise=_int(c.get("rise"), 1, 100),
        )
    carp = doc.get("carp")
    if not isinstance(carp, list) or len(carp) > 1024:
        raise ValueError("carp: not a list")
    roles = {}
    for entry in carp:
        if not isinstance(entry, dict):
            raise TypeError("carp: not an object")
        key = (_str(entry.get("interface"), 16), _int(entry.get("vhid"), 1, 255))
        roles[key] = Role(
            _str(entry.get("state"), 16),
            _int(entry.get("advskew"), 0, 255),
            _bool(entry.get("managed")),
        )
    return NodeView(
        session=session,
        checks=MappingProxyType(checks),
        maintenance=_bool(doc.get("maintenance")),
        demoted=_bool(doc.get("demoted")),
        roles=MappingProxyType(roles),
    )


def node_view(session: str, document: Mapping[str, Any]) -> NodeView:
    """This node's own view, through the same reader as the peer's (so both agree)."""
    return parse_view(dict(document), session)


# --- the glue ---------------------------------------------------------------------------------


class Pairing:
    def __init__(self, channel: Channel, log: Log) -> None:
        self.channel = channel
        self.log = log
        channel.parse = parse_view
        self.decision: PairDecision = ALONE
        self.first_bad: dict[
            str, int
        ] = {}  # my failing check -> seq of my first message showing it
        self.heard = channel.last  # what had been heard when the current round began
        self.state = "unknown"
        self.announced: dict[str, Verdict] = {}  # reasons whose verdict was logged
        self.rounds = {"split brain": 0, "split": 0}
        self.peer_round: object = None
        self.last_sent: tuple[dict[str, Any], float] | None = None  # (view, trio time)
        self.settled: tuple[tuple[int, ...], bool] = ((), False)
        self.warned_no_healthier = False
        self.news: tuple[object, ...] = ()  # the peer's view as decide last took it (_news)
        self._doc: dict[str, Any] | None = None  # this node's view document, built by _decide
        # the optional sections of every message (peer.py): set by the daemon
        self.sections: Callable[[], Mapping[str, Any]] = dict

    # --- before decide -----------------------------------------------------------------------

    def adjust(self, sup: Supervisor, inputs: Inputs) -> Inputs:
        decision, peer = self._decide(sup)
        self._report(decision, peer)
        self.decision = decision
        self.news = self._news()
        return replace(inputs, withheld=decision.withheld, deeper=decision.deeper)

    def quiet(self, sup: Supervisor) -> bool:
        """Nothing new for `decide` from the pair, for the supervisor's idle round: the pair's
        word is the one decide last took (the same peer freshness, verdicts, step deeper), no
        reason waits for the peer (a wait ends by rounds: mine bad, the peer's good) and no
        split is being counted. Called every round that could be idle, so that the failing
        checks the peer must hear of are noted from their first bad round."""
        decision, _ = self._decide(sup)
        if decision != self.decision or Verdict.WAIT in decision.verdicts.values():
            return False
        if self._news() != self.news:
            return False  # the peer's view changed: the status shows it, decide takes it
        return (decision.split_brain, decision.split) == self.settled

    def _news(self) -> tuple[object, ...]:
        """What the peer says, without what moves every round (its round, its check counts):
        its freshness, its session and its view (reasons, roles, demoted, withheld...)."""
        last = self.channel.last
        state = self.channel.state(trio.current_time())
        if last is None:
            return (state,)
        view = dict(last.document["view"])
        view.pop("round", None)
        checks = view.pop("checks", {})  # validated when received: name -> object
        view["checks"] = {n: (c.get("up"), c.get("local")) for n, c in checks.items()}
        return (state, last.session, view)

    def _decide(self, sup: Supervisor) -> tuple[PairDecision, Peer | None]:
        doc = view_document(sup.config, sup.checks, sup.params, sup.memory, sup.view)
        self._doc = doc  # an idle round sends it (`idle`): built once a round
        mine = node_view(self.channel.session, doc)
        for name, check in sup.checks.items():
            if check.bad > 0 or check.up is False:
                self.first_bad.setdefault(name, self.channel.seq + 1)
            else:
                self.first_bad.pop(name, None)
        peer = self._peer(trio.current_time())
        return decide_pair(mine, peer), peer

    def _peer(self, now: float) -> Peer | None:
        state = self.channel.state(now)
        if state != self.state:
            self._state_changed(state)
        last = self.channel.last
        if last is None or not isinstance(last.view, NodeView):
            return None
        heard = last.document.get("heard")
        acked: frozenset[str] = frozenset()
        if isinstance(heard, dict) and heard.get("session") == self.channel.session:
            acked = frozenset(n for n, s in self.first_bad.items() if heard["seq"] >= s)
        view = replace(last.view, session=last.session)
        return Peer(view, fresh=state == "up", acked=acked)

    def _state_changed(self, state: str) -> None:
        before, self.state = self.state, state
        node = self.channel.last.document.get("node") if self.channel.last else None
        if state == "up":
            self.log.notice("peer up: deciding together", node=node)
        elif state == "rejected":
            self.log.warning(
                "peer messages rejected: deciding alone",
                rejected=dict(self.channel.rejected),
            )
        elif before == "up":
            self.log.warning("peer lost: deciding alone", node=node)

    def _report(self, decision: PairDecision, peer: Peer | None) -> None:
        for reason, verdict in decision.verdicts.items():
            if self.announced.get(reason) is verdict:
                continue
            self.announced[reason] = verdict
            if verdict is Verdict.SHARED:
                self.log.notice(f"{reason} lost on both nodes: failover would not help")
            elif verdict is Verdict.THEIRS:
                self.log.notice(
                    f"{reason} lost because the peer's own SYNC link is down: the peer steps "
                    "down, not this node"
                )
            elif verdict is Verdict.WAIT:
                self.log.info(f"{reason} down: waiting for the peer's verdict")
        for reason in set(self.announced) - set(decision.verdicts):
            del self.announced[reason]
        if decision.no_healthier and not self.warned_no_healthier:
            self.log.warning(
                "maintenance demotes this node although the peer is no healthier",
                peer_reasons=peer.view.reasons if peer is not None else (),
            )
        self.warned_no_healthier = decision.no_healthier
        if decision.deeper and not self.decision.deeper:
            self.log.notice("both nodes demoted: this node steps one further down")
        self._splits(decision)

    def _splits(self, decision: PairDecision) -> None:
        """Count a split once per new round of the peer's: a stalled peer's old view (its
        read from before its own commands) is not evidence twice."""
        brain, split = decision.split_brain, decision.split
        last = self.channel.last
        peer_round = last.document["view"].get("round") if last is not None else None
        new = peer_round != self.peer_round
        self.peer_round = peer_round
        if brain:
            self.rounds["split brain"] += 1 if new else 0
        else:
            self.rounds["split brain"] = 0
        if split:
            self.rounds["split"] += 1 if new else 0
        else:
            self.rounds["split"] = 0
        old_brain, old_split = self.settled
        new_brain = brain if self.rounds["split brain"] >= SETTLE else ()
        new_split = split and self.rounds["split"] >= SETTLE
        if new_brain and new_brain != old_brain:
            self.log.error(
                "split brain: MASTER on both nodes",
                vhids=",".join(map(str, new_brain)),
            )
        elif old_brain and not brain:
            self.log.notice("split brain over")
        if new_split and not old_split:
            self.log.error("VIPs split across the pair: some MASTER here, others on the peer")
        elif old_split and not split:
            self.log.notice("VIPs together again")
        self.settled = (new_brain if brain else (), new_split if split else False)

    # --- after the round ---------------------------------------------------------------------

    def published(self, status: Status) -> None:
        doc = view_document(
            status.config,
            status.checks,
            check_params(status.config),
            status.memory,
            status.view,
            withheld=self.decision.held(Verdict.SHARED, Verdict.THEIRS),
            round_number=status.telemetry.polls,
        )
        self._send(doc)

    def idle(self, sup: Supervisor) -> None:
        """An idle round publishes nothing, but the peer hears this node every round: its
        check counts move on, and what it has heard of the peer's messages (the peer's waits
        end by them, and a silent node is a lost one)."""
        doc, self._doc = self._doc, None
        if doc is None:  # `quiet` did not run this round: build it
            doc = view_document(sup.config, sup.checks, sup.params, sup.memory, sup.view)
        # what `quiet` built this round, nothing changed since (the round is idle)
        doc["withheld"] = list(self.decision.held(Verdict.SHARED, Verdict.THEIRS))
        doc["round"] = sup.telemetry.polls
        self._send(doc)

    def _send(self, doc: dict[str, Any]) -> None:
        self.channel.send(doc, self.heard, **self.sections())
        self.last_sent = (doc, trio.current_time())
        # the next round begins after this: what was heard by now is what that round has heard
        self.heard = self.channel.last

    async def heartbeat(
        self, interval: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Resend the last view when no round has sent one for an interval (a round that
        waits on slow commands must not make this node look dead to its peer)."""
        task_status.started()
        while True:
            await trio.sleep(interval)
            if self.last_sent is None:
                continue
            doc, at = self.last_sent
            if trio.current_time() - at >= interval:
                self.channel.send(doc, self.heard, **self.sections())
                self.last_sent = (doc, trio.current_time())

    def status(self) -> PairStatus:
        now = trio.current_time()
        last = self.channel.last
        return PairStatus(
            state=self.channel.state(now),
            seen=self.channel.age(now),
            view=MappingProxyType(dict(last.document["view"])) if last is not None else None,
            node=str(last.document.get("node")) if last is not None else None,
            withheld=self.decision.held(Verdict.SHARED, Verdict.THEIRS),
            waiting=self.decision.held(Verdict.WAIT),
            split_brain=self.settled[0],
            split=self.settled[1],
            deeper=self.decision.deeper,
            rejected=MappingProxyType(dict(self.channel.rejected)),
            send_errors=self.channel.send_errors,
            dropped_sections=MappingProxyType(dict(self.channel.dropped_sections)),
        )
