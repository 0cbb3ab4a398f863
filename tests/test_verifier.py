"""The daemon's checks on trio's MockClock: every [verify] interval, off at 0, edges logged at
notice, a bug or a hang never stops the loop."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import trio
import trio.testing

from carpd_py import verifier as verifier_module
from carpd_py.config import Config, VerifyConfig
from carpd_py.model import HostView
from carpd_py.nodereport import NodeReport
from carpd_py.pair import Role
from carpd_py.verifier import Verifier, check_section, with_roles

from .fakes import RecordingLog


class Reads:
    """Stands for verifyio.local_report: counts the runs, returns what it is told."""

    def __init__(self) -> None:
        self.times: list[float] = []
        pfsync = {"interface": "pfsync0", "up": True, "syncdev": "em2",
                  "syncdev_status": "active", "subnet": "10.255.255.0/30"}  # fmt: skip
        self.report = NodeReport(node="A", pf_enabled=True, pf_states=10, pf_digest="d",
                                 pfsync=pfsync, demote=0)  # fmt: skip
        self.fail: Exception | None = None
        self.hang = False

    async def __call__(self, config: Config, share: int | None, view: Any) -> NodeReport:
        self.times.append(trio.current_time())
        if self.hang:
            await trio.sleep_forever()
        if self.fail is not None:
            raise self.fail
        return self.report


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    fake = Reads()
    monkeypatch.setattr(verifier_module, "local_report", fake)
    return fake


def make(interval: float) -> tuple[Verifier, RecordingLog]:
    log = RecordingLog()
    config = replace(Config(), verify=VerifyConfig(interval=interval))
    return Verifier(config, log, lambda: HostView(()), lambda: 0), log


async def test_the_checks_run_every_interval(
    reads: Reads, autojump_clock: trio.testing.MockClock
) -> None:
    v, _ = make(60.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(v.run)
        await trio.sleep(150)
        nursery.cancel_scope.cancel()
    assert [round(t) for t in reads.times] == [0, 60, 120]
    assert v.last is not None
    assert v.last.document["result"] == "warning"  # no peer report yet


async def test_interval_0_turns_them_off_and_a_reload_on(
    reads: Reads, autojump_clock: trio.testing.MockClock
) -> None:
    v, _ = make(0)
    async with trio.open_nursery() as nursery:
        await nursery.start(v.run)
        await trio.sleep(100)
        assert reads.times == []
        v.config = replace(v.config, verify=VerifyConfig(interval=30.0))
        await trio.sleep(40)
        nursery.cancel_scope.cancel()
    assert len(reads.times) == 2


async def test_a_failure_and_its_recovery_are_logged_at_notice_once(
    reads: Reads, autojump_clock: trio.testing.MockClock
) -> None:
    v, log = make(10.0)
    reads.report = replace(reads.report, pf_enabled=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(v.run)
        await trio.sleep(35)
        reads.report = replace(reads.report, pf_enabled=True)
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    notices = [(e, kw.get("check")) for level, e, kw in log.lines if level == "notice"]
    assert notices == [
        ("verify: check failed", "pf_rules"),
        ("verify: check passes again", "pf_rules"),
    ]


async def test_a_bug_or_a_hang_never_stops_the_loop(
    reads: Reads, autojump_clock: trio.testing.MockClock
) -> None:
    v, log = make(10.0)
    reads.fail = RuntimeError("bug")
    async with trio.open_nursery() as nursery:
        await nursery.start(v.run)
        await trio.sleep(15)
        reads.fail, reads.hang = None, True
        await trio.sleep(30)
        reads.hang = False
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    levels = [(level, e) for level, e, _ in log.lines]
    assert ("error", "verify: the checks failed to run") in levels
    assert ("warning", "verify: the slow reads did not finish") in levels
    assert v.last is not None


async def test_the_peers_report_is_used_while_fresh_and_a_bad_one_refused(
    reads: Reads, autojump_clock: trio.testing.MockClock
) -> None:
    v, log = make(60.0)
    assert not v.peer_report({"node": 5})
    assert ("warning", "verify: the peer's report is refused") in [
        (lv, e) for lv, e, _ in log.lines
    ]
    peer = replace(reads.report, node="B")
    assert v.peer_report(peer.to_json())
    done = await v.run_once()
    assert done.peer == peer
    assert v.own_report() == reads.report.to_json()
    await trio.sleep(181)
    assert (await v.run_once()).peer is None  # stale: three intervals without news


async def test_the_peers_report_is_pulled_from_the_channel(
    reads: Reads, autojump_clock: trio.testing.MockClock
) -> None:
    """What the pair channel last received: its "verify" section and when it arrived."""
    peer = replace(reads.report, node="B")
    message: list[tuple[Any, float]] = []
    log = RecordingLog()
    config = replace(Config(), verify=VerifyConfig(interval=60.0))
    v = Verifier(config, log, lambda: None, lambda: 0, lambda: message[-1] if message else None)
    assert (await v.run_once()).peer is None
    message.append((peer.to_json(), trio.current_time()))
    assert (await v.run_once()).peer == peer
    message.append(({"node": 1}, trio.current_time() + 1))  # a bad one: refused, logged
    assert (await v.run_once()).peer == peer
    assert ("warning", "verify: the peer's report is refused") in [
        (lv, e) for lv, e, _ in log.lines
    ]


async def test_the_peers_latest_roles_are_used_while_its_report_is_unchanged(
    reads: Reads, autojump_clock: trio.testing.MockClock
) -> None:
    """While the peer waits to confirm a failure, its report (and so when it read it) stays
    the same, but every message brings the roles of its latest view: a second run must use
    those, or both nodes confirm a failover's passing "no MASTER" from each other's old roles."""
    carp = {"interface": "carp0", "vhid": 10, "state": "BACKUP", "advbase": 1, "advskew": 100,
            "carpdev": "em0"}  # fmt: skip
    report = {**replace(reads.report, node="B").to_json(), "carp": [carp]}
    message: list[tuple[Any, float]] = [(report, 5.0)]
    config = replace(Config(), verify=VerifyConfig(interval=60.0))
    v = Verifier(config, RecordingLog(), lambda: None, lambda: 0, lambda: message[-1])
    first = await v.run_once()
    assert first.peer is not None
    assert first.peer.carp[0].state == "BACKUP"
    message.append(({**report, "carp": [{**carp, "state": "MASTER"}]}, 5.0))  # same read time
    second = await v.run_once()
    assert second.peer is not None
    assert second.peer.carp[0].state == "MASTER"


async def test_the_section_for_the_peer_carries_the_report_and_its_age(
    reads: Reads, autojump_clock: trio.testing.MockClock
) -> None:
    v, _ = make(60.0)
    assert v.section() == {}  # the checks have not run: nothing to send
    await v.run_once()
    await trio.sleep(2.5)
    section = v.section()["verify"]
    assert section["age"] == 2.5
    assert NodeReport.from_json(section) == reads.report
    assert check_section(section) == section


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ([], "not an object"),
        ({"node": "B"}, "bad 'age'"),
        ({"node": "B", "age": -1}, "bad 'age'"),
        ({"node": "B", "age": True}, "bad 'age'"),
        ({"node": "B", "age": 1e12}, "bad 'age'"),
        ({"node": "B", "age": 0, "carp": [{"vhid": "x"}]}, "bad 'carp'"),
        ({"node": "", "age": 0}, "no node name"),
    ],
)
def test_a_bad_section_from_the_peer_is_refused_naming_the_field(data: Any, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_section(data)


async def test_a_new_failure_is_believed_only_when_a_second_run_sees_it(
    reads: Reads, autojump_clock: trio.testing.MockClock
) -> None:
    """A failover in progress shows a vhid MASTER on both nodes for a moment: a failure the
    last run did not have is run again CONFIRM seconds later; only the second run counts."""
    v, log = make(60.0)
    ok = reads.report
    await v.run_once(v.confirm())
    reads.report = replace(ok, pf_enabled=False)  # the first read of the next run only

    async def flip_back() -> None:
        await trio.sleep(1.0)
        reads.report = ok

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flip_back)
        done = await v.run_once(v.confirm())
    assert [round(t) for t in reads.times] == [0, 0, 3]
    assert done.document["result"] == "warning"  # no peer: not ok, but nothing failed
    assert log.events("notice") == []
    reads.report = replace(ok, pf_enabled=False)  # this time it stays
    done = await v.run_once(v.confirm())
    assert done.document["result"] == "failure"
    assert log.events("notice") == ["verify: check failed"]
    assert [round(t) for t in reads.times][-2:] == [3, 6]
    done = await v.run_once(v.confirm())  # an old failure: no second run
    assert [round(t) for t in reads.times][-1:] == [6]


def test_the_peers_report_takes_the_roles_of_its_latest_view() -> None:
    carp = [{"interface": "carp0", "vhid": 10, "state": "MASTER", "advbase": 1, "advskew": 100,
             "carpdev": "em0"},
            {"interface": "carp1", "vhid": 20, "state": "MASTER", "advbase": 1, "advskew": 100,
             "carpdev": "em1"}]  # fmt: skip
    section: dict[str, Any] = {"node": "B", "age": 40.0, "carp": carp}
    got = with_roles(section, {("carp0", 10): Role("BACKUP", 240)})
    assert [(c["state"], c["advskew"]) for c in got["carp"]] == [("BACKUP", 240), ("MASTER", 100)]
    assert carp[0]["state"] == "MASTER"  # the section as it came is left alone
    assert NodeReport.from_json(got).carp[0].state == "BACKUP"
