"""The supervisor's timing on trio's MockClock: rounds, fall, rise, hold-down, crash safety."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import trio
import trio.testing

from carpd_py.config import Config, DemoteConfig, SyncConfig, UpstreamConfig
from carpd_py.supervisor import Supervisor

from .fakes import FakeHost, FakeProber, RecordingLog

# Rounds start at whole seconds; a bad peer probe waits its whole timeout (0.5 s).
SYNC = SyncConfig(interface="pfsync0", peer="127.0.0.2", timeout=0.5, fall=3, rise=3)


def make_config(tmp_path: Path, **kw: object) -> Config:
    base = Config(
        interval=1.0,
        state_file=str(tmp_path / "state.json"),
        demote=DemoteConfig(hold_down=10.0),
        sync=SYNC,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@asynccontextmanager
async def running(sup: Supervisor) -> AsyncIterator[Supervisor]:
    async with trio.open_nursery() as nursery:
        sup.load()
        await nursery.start(sup.run)
        yield sup
        nursery.cancel_scope.cancel()


def demoted(sup: Supervisor) -> bool:
    """Read through a call: mypy would otherwise narrow the attribute across awaits."""
    return sup.memory.demoted


def timed_handbook(skew: int = 0) -> FakeHost:
    return FakeHost.handbook(skew)


async def test_peer_loss_demotes_after_exactly_fall_rounds_and_restores_after_rise_and_hold_down(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    sup = Supervisor(make_config(tmp_path), host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(10.5)
        assert sup.checks["sync"].up is True
        assert host.commands == []
        prober.peer_up = False  # rounds at 11, 12, 13 are bad; the third decides
        await trio.sleep_until(13.4)
        assert host.commands == []
        assert sup.checks["sync"].bad == 2
        await trio.sleep_until(13.6)
        assert host.commands == [
            ("advskew", "carp0", {10: 240}),
            ("advskew", "carp1", {20: 240}),
        ]
        assert 13.5 <= host.times[0] < 13.55
        assert demoted(sup)
        assert sup.memory.reasons == ("sync",)
        demoted_at = sup.memory.since
        assert demoted_at is not None

        prober.peer_up = True  # good rounds at 21, 22, 23: up at 23, hold-down ends 23.5
        await trio.sleep_until(20.5)
        await trio.sleep_until(23.9)
        assert sup.checks["sync"].up is True
        assert len(host.commands) == 2  # risen, but the hold-down has not passed
        await trio.sleep_until(24.5)
        assert host.commands[2:] == [
            ("advskew", "carp0", {10: 0}),
            ("advskew", "carp1", {20: 0}),
        ]
        assert 24.0 <= host.times[2] < 24.05
        assert host.times[2] - demoted_at >= 10.0
        assert not demoted(sup)
    assert "demoting" in log.events("notice")
    assert "restoring baselines" in log.events("notice")


async def test_sync_link_loss_demotes_at_the_first_round(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    sup = Supervisor(make_config(tmp_path), host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(5.5)
        host.link("em2", up=False)
        await trio.sleep_until(6.2)
        assert demoted(sup)
        assert 6.0 <= host.times[0] < 6.05  # one read after the fault, no confirmation rounds
        assert sup.details["sync"] == "syncdev em2 no carrier, peer answered"


async def test_a_hung_read_is_no_round_and_the_loop_goes_on(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    config = make_config(tmp_path)
    sup = Supervisor(config, host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(5.5)
        host.hang = True
        host.link("em2", up=False)  # not visible: nothing can be read
        await trio.sleep_until(30)
        assert not demoted(sup)  # a failed read says nothing about the SYNC link
        # each hung round is given up after 2 x command_timeout + 0.5 s = 4.5 s, and the
        # next one starts at once: rounds at 6, 10.5, 15, 19.5, 24 have failed by 30
        assert sup.telemetry.read_errors == 5
        assert sup.telemetry.polls >= 7
        assert sup.read_error is not None
        assert log.events("error").count("host read failed") == 1  # once, not every round
        host.hang = False  # the round begun at 28.5 still hangs until 33
        await trio.sleep_until(33.5)
        assert demoted(sup)  # now it is read: the link is down
        assert "host read works again" in log.events("notice")


async def test_a_hung_prober_is_a_failed_round_never_a_stall(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    up = UpstreamConfig(name="isp", targets=("127.0.0.3",), timeout=0.5, fall=2, rise=2)
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    config = make_config(tmp_path, sync=None, upstream=(up,))
    sup = Supervisor(config, host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(4.5)
        assert sup.checks["upstream:isp"].up is True
        prober.hang = True
        await trio.sleep_until(7.5)
        assert demoted(sup)
        assert sup.memory.reasons == ("upstream:isp",)
        assert sup.telemetry.polls >= 7  # every round finished


async def test_nothing_is_decided_before_every_check_has_a_verdict(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    up = UpstreamConfig(name="isp", targets=("127.0.0.3",), timeout=0.5, fall=3, rise=5)
    host, prober, log = timed_handbook(), FakeProber(peer_up=False), RecordingLog()
    config = make_config(tmp_path, upstream=(up,))
    sup = Supervisor(config, host, prober, log, wall=trio.current_time)
    sup.set_maintenance(True)
    async with running(sup):
        await trio.sleep_until(1.9)
        assert host.commands == []  # sync has no verdict yet (fall 3)
        await trio.sleep_until(2.9)
        # sync is down after three bad rounds; upstream needs five good ones (rise 5)
        assert {k: c.up for k, c in sup.checks.items()} == {"sync": False, "upstream:isp": None}
        assert host.commands == []
        await trio.sleep_until(4.9)
        assert {k: c.up for k, c in sup.checks.items()} == {"sync": False, "upstream:isp": True}
        assert sup.memory.reasons == ("maintenance", "sync")
        assert len(host.commands) == 2


async def test_sigkill_while_demoted_then_restart_restores_the_real_baselines(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, prober, log = timed_handbook(skew=100), FakeProber(), RecordingLog()
    host.set_state("carp0", "BACKUP")
    config = make_config(tmp_path)
    sup = Supervisor(config, host, prober, log, wall=trio.current_time, boot_time=1.0)
    async with running(sup):
        await trio.sleep_until(3.5)
        host.link("em2", up=False)
        await trio.sleep_until(4.5)
        assert host.advskew("carp0") == 240
    # "SIGKILL": the supervisor is gone without shutdown(); only the state file remains.
    saved = json.loads(Path(config.state_file).read_text())
    assert saved["demoted"] is True
    assert {(v["interface"], v["baseline"], v["target"]) for v in saved["vhids"]} == {
        ("carp0", 100, 240),
        ("carp1", 100, 240),
    }
    host.link("em2", up=True)
    log2 = RecordingLog()
    sup2 = Supervisor(config, host, prober, log2, wall=trio.current_time, boot_time=1.0)
    async with running(sup2):
        assert demoted(sup2)
        await trio.sleep_until(trio.current_time() + 12)
        assert host.advskew("carp0") == 100  # the real baseline, never 240 adopted
        assert host.advskew("carp1") == 100
        assert not demoted(sup2)
    assert "still demoted from before the restart" in log2.events("notice")


async def test_a_vhid_found_at_240_with_no_record_is_refused_and_never_touched(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    host.hand_set("carp1", {20: 240})
    sup = Supervisor(make_config(tmp_path), host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(3.5)
        host.link("em2", up=False)
        await trio.sleep_until(5.5)
        assert host.commands == [("advskew", "carp0", {10: 240})]
        host.link("em2", up=True)
        await trio.sleep_until(20)
        assert host.commands[1:] == [("advskew", "carp0", {10: 0})]
        assert host.advskew("carp1") == 240
    refused = [e for e in log.events("error") if "carp1 vhid 20" in e]
    assert len(refused) == 1
    assert "looks demoted already" in refused[0]


async def test_a_hand_change_while_demoted_becomes_the_baseline_and_is_never_fought(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    sup = Supervisor(make_config(tmp_path), host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(3.5)
        host.link("em2", up=False)
        await trio.sleep_until(4.5)
        host.hand_set("carp0", {10: 50})  # the operator steps in
        await trio.sleep_until(8.5)
        assert host.advskew("carp0") == 50  # not put back to 240
        host.link("em2", up=True)
        await trio.sleep_until(30)
        assert host.advskew("carp0") == 50  # the new baseline
        assert host.advskew("carp1") == 0
        assert sup.memory.vhids[("carp0", 10)].baseline == 50
    assert any("changed by hand" in e for e in log.events("warning"))


async def test_carpdemote_adds_and_takes_away_exactly_its_share(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    host.counter = 1  # the kernel's own +1 (say a carpdev link went down)
    config = make_config(tmp_path, demote=DemoteConfig(method="carpdemote", hold_down=5.0))
    sup = Supervisor(config, host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(3.5)
        prober.peer_up = False
        await trio.sleep_until(7)
        assert host.counter == 51
        host.counter += 1  # the kernel adds more meanwhile
        prober.peer_up = True
        await trio.sleep_until(20)
        assert host.counter == 2  # ours is gone, the kernel's two stay
        assert host.commands == [("carpdemote", "carp", 50), ("carpdemote", "carp", -50)]
        assert host.advskew("carp0") == 0


async def test_failed_commands_are_retried_and_the_baseline_survives(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    sup = Supervisor(make_config(tmp_path), host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(3.5)
        host.fail_sets = True
        host.link("em2", up=False)
        await trio.sleep_until(6.5)
        assert host.advskew("carp0") == 0
        assert demoted(sup)
        # once per interface, not once per round
        assert log.events("error").count("command failed, will retry") == 2
        host.fail_sets = False
        await trio.sleep_until(7.5)
        assert host.advskew("carp0") == 240
        assert sup.memory.vhids[("carp0", 10)].baseline == 0


@pytest.mark.parametrize("restore_on_exit", [False, True])
async def test_shutdown_leaves_a_demoted_node_demoted_unless_restore_on_exit(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, restore_on_exit: bool
) -> None:
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    config = make_config(tmp_path, restore_on_exit=restore_on_exit)
    sup = Supervisor(config, host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(3.5)
        host.link("em2", up=False)
        await trio.sleep_until(4.5)
    await sup.shutdown()
    expected = 0 if restore_on_exit else 240
    assert (host.advskew("carp0"), host.advskew("carp1")) == (expected, expected)
    saved = json.loads(Path(config.state_file).read_text())
    assert saved["demoted"] is not restore_on_exit
    assert {v["baseline"] for v in saved["vhids"]} == {0}


async def test_maintenance_demotes_and_survives_a_restart_until_lifted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    config = make_config(tmp_path, demote=DemoteConfig(hold_down=2.0))
    sup = Supervisor(config, host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(3.5)
        sup.set_maintenance(True)
        await trio.sleep_until(4.5)
        assert host.advskew("carp0") == 240
    sup2 = Supervisor(config, host, prober, RecordingLog(), wall=trio.current_time)
    async with running(sup2):
        await trio.sleep_until(trio.current_time() + 30)
        assert host.advskew("carp0") == 240  # still in maintenance after the restart
        assert sup2.memory.reasons == ("maintenance",)
        sup2.set_maintenance(False)
        await trio.sleep_until(trio.current_time() + 1.5)
        assert host.advskew("carp0") == 0


async def test_upstream_loss_demotes_within_fall_intervals_plus_timeout(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # The probe timeout is as long as the interval: a failing round takes a whole interval,
    # and the next one must start at once, not a tick later.
    up = UpstreamConfig(name="isp", targets=("127.0.0.3",), timeout=1.0, fall=3, rise=2)
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    config = make_config(tmp_path, sync=None, upstream=(up,))
    sup = Supervisor(config, host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(10.5)
        prober.upstream_up["isp"] = False  # rounds at 11, 12, 13 fail, each after 1 s
        await trio.sleep_until(16)
        fault = 10.5
        assert host.commands[0] == ("advskew", "carp0", {10: 240})
        assert host.times[0] - fault <= 3 * 1.0 + 1.0 + 0.05  # fall x interval + timeout
        assert host.times[0] - fault >= 3 * 1.0


async def test_a_restore_with_every_vhid_refused_says_nothing_was_restored(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Issue 9 item 10: `restoring baselines` only when a baseline is restored."""
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    host.hand_set("carp0", {10: 240})
    host.hand_set("carp1", {20: 240})
    sup = Supervisor(make_config(tmp_path), host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(3.5)
        host.link("em2", up=False)
        await trio.sleep_until(5.5)
        assert demoted(sup)
        host.link("em2", up=True)
        await trio.sleep_until(20)
        assert not demoted(sup)
        assert host.commands == []
    notices = log.events("notice")
    assert "restoring baselines" not in notices
    (ended,) = [e for e in notices if e.startswith("demotion over")]
    assert "nothing to restore" in ended
    assert "carp0 vhid 10" in ended
    assert "carp1 vhid 20" in ended
    assert "refused" in ended


async def test_a_restore_names_the_vhids_it_restores(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    host.hand_set("carp1", {20: 240})
    sup = Supervisor(make_config(tmp_path), host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(3.5)
        host.link("em2", up=False)
        await trio.sleep_until(5.5)
        host.link("em2", up=True)
        await trio.sleep_until(20)
        assert not demoted(sup)
    (line,) = [kw for lv, e, kw in log.lines if e == "restoring baselines"]
    assert line["vhids"] == "carp0 vhid 10"
    assert line["refused"] == "carp1 vhid 20"


async def test_one_misread_while_demoted_never_costs_a_baseline(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Issue 9 item 1, as seen: maintenance on, one read shows carp1 advskew 50, the next 240
    again; after `maintenance off` carp1 is back at 0, and 0 is in the state file."""
    host, prober, log = timed_handbook(), FakeProber(), RecordingLog()
    config = make_config(tmp_path)
    sup = Supervisor(config, host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(3.5)
        sup.set_maintenance(True)
        await trio.sleep_until(5.5)
        assert host.advskew("carp1") == 240
        host.hand_set("carp1", {20: 50})  # what one read shows: the round at 6
        await trio.sleep_until(6.5)
        host.hand_set("carp1", {20: 240})
        await trio.sleep_until(8.5)
        host.hand_set("carp1", {20: 254})  # and one read of 254: the round at 9
        await trio.sleep_until(9.5)
        host.hand_set("carp1", {20: 240})
        await trio.sleep_until(12.5)
        sup.set_maintenance(False)
        await trio.sleep_until(30)
        assert host.advskew("carp1") == 0
        assert host.advskew("carp0") == 0
    saved = json.loads(Path(config.state_file).read_text())
    assert {(v["interface"], v["baseline"]) for v in saved["vhids"]} == {("carp0", 0), ("carp1", 0)}
    assert not any("changed by hand" in e for e in log.events("warning"))
    once = [e for e in log.events("info") if e.startswith("carp1 vhid 20 read once")]
    assert len(once) == 2
