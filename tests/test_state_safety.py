"""The state file and the clocks, on trio's MockClock (issue 9, items 3, 4 and 6).

A state file that cannot be written holds every change back (never an exit); the hold-down
runs on the monotonic clock whatever the wall clock does; a stored time that cannot be right
counts as now; any unreadable state file is set aside and the node runs on.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import trio
import trio.testing

from carpd_py import decide as d
from carpd_py import state
from carpd_py.hysteresis import Check
from carpd_py.supervisor import Supervisor

from .fakes import FakeHost, FakeProber, RecordingLog
from .test_supervisor import demoted, make_config, running

EPOCH = 1_764_036_000.0  # a plausible wall clock, far from trio's MockClock zero


class Wall:
    """A wall clock that follows trio's clock until the test jumps it."""

    def __init__(self) -> None:
        self.offset = EPOCH

    def __call__(self) -> float:
        return trio.current_time() + self.offset


# --- item 4: the hold-down runs on the monotonic clock --------------------------------------


@pytest.mark.parametrize("jump", [3600.0, -3600.0])
async def test_a_wall_clock_jump_while_demoted_moves_the_hold_down_not_at_all(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, jump: float
) -> None:
    host, prober, log, wall = FakeHost.handbook(), FakeProber(), RecordingLog(), Wall()
    sup = Supervisor(make_config(tmp_path), host, prober, log, wall=wall)
    async with running(sup):
        await trio.sleep_until(3.5)
        host.link("em2", up=False)
        await trio.sleep_until(4.5)
        assert demoted(sup)
        demoted_at = host.times[0]
        wall.offset += jump  # ntpd steps the clock, or an admin sets it by hand
        host.link("em2", up=True)  # the link is back at once: only the hold-down holds now
        await trio.sleep_until(demoted_at + 9.5)
        assert demoted(sup), "restored before the hold-down (10 s) had passed"
        await trio.sleep_until(demoted_at + 11.5)
        assert not demoted(sup), "the hold-down (10 s) did not end on time"
        assert host.times[2] - demoted_at >= 10.0
        restore = [kw for lv, e, kw in log.lines if e == "restoring baselines"]
        assert 10.0 <= restore[0]["demoted_for"] < 11.5


@pytest.mark.parametrize("since", ["1e400", "NaN", "-Infinity", "-5", "1e300", "4102444800"])
async def test_a_stored_demotion_time_in_the_future_or_absurd_counts_as_now(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, since: str
) -> None:
    host, prober, wall = FakeHost.handbook(), FakeProber(), Wall()
    host.hand_set("carp0", {10: 240})
    host.hand_set("carp1", {20: 240})
    config = make_config(tmp_path)
    vhids = [
        {"interface": "carp0", "vhid": 10, "baseline": 0, "target": 240, "seen": 240},
        {"interface": "carp1", "vhid": 20, "baseline": 0, "target": 240, "seen": 240},
    ]
    doc = {"version": 1, "boot_time": 1.0, "demoted": True, "since": 0, "reasons": ["sync"]}
    doc["vhids"] = vhids
    text = json.dumps(doc).replace('"since": 0', f'"since": {since}')
    Path(config.state_file).write_text(text)
    log = RecordingLog()
    sup = Supervisor(config, host, prober, log, wall=wall, boot_time=1.0)
    async with running(sup):
        assert demoted(sup)
        stored = sup.memory.since
        assert stored is not None
        assert math.isfinite(stored)
        assert stored == pytest.approx(wall(), abs=1.0)  # counted as now
        # the sync check is up after 3 good rounds (at 2); the hold-down runs from the start
        await trio.sleep_until(9.5)
        assert demoted(sup)
        assert host.advskew("carp0") == 240
        await trio.sleep_until(11.5)
        assert not demoted(sup)
        assert (host.advskew("carp0"), host.advskew("carp1")) == (0, 0)
    assert any(e.startswith("stored demotion time") for e in log.events("warning"))


async def test_a_stored_demotion_time_in_the_past_counts_for_the_hold_down(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, prober, wall = FakeHost.handbook(), FakeProber(), Wall()
    host.hand_set("carp0", {10: 240})
    config = make_config(tmp_path)
    memory = d.Memory(
        demoted=True,
        since=EPOCH - 6.0,  # demoted 6 s before this start: 4 s of hold-down left
        reasons=("sync",),
        vhids=d.vhid_map({("carp0", 10): d.VhidRecord(0, 240, 240)}),
    )
    state.save(config.state_file, memory, 1.0)
    sup = Supervisor(config, host, prober, RecordingLog(), wall=wall, boot_time=1.0)
    async with running(sup):
        await trio.sleep_until(3.5)
        assert demoted(sup)
        await trio.sleep_until(4.5)
        assert not demoted(sup)
        assert host.advskew("carp0") == 0


def test_resume_counts_an_impossible_stored_time_as_now() -> None:
    held = d.Memory(demoted=True, since=100.0, reasons=("sync",))
    assert d.resume(held, now=160.0) == (held, 60.0)
    for bad in (math.inf, -math.inf, math.nan, -5.0, 1e300, 161.0):
        memory, elapsed = d.resume(d.Memory(demoted=True, since=bad), now=160.0)
        assert (memory.since, elapsed) == (160.0, 0.0)
    assert d.resume(d.Memory(), now=160.0) == (d.Memory(), None)


def test_decide_measures_the_hold_down_on_the_demoted_for_input() -> None:
    policy = d.Policy(hold_down=10.0)
    held = d.Memory(demoted=True, since=1.0)  # the sync check is up again
    up = {"sync": Check(up=True)}
    # The wall clock says an hour has passed; the monotonic clock says 2 s: hold on.
    inputs = d.Inputs(checks=up, now=3601.0, advskews=None, demoted_for=2.0)
    assert d.decide(policy, held, inputs) == (held, ())
    inputs = d.Inputs(checks=up, now=-3600.0, advskews=None, demoted_for=10.0)
    memory, effects = d.decide(policy, held, inputs)
    assert not memory.demoted
    assert effects == (d.Restore(10.0),)


# --- item 3: a state file that cannot be written --------------------------------------------


def break_directory(path: Path) -> None:
    """Make `path` (a directory) unusable for files: a regular file in its place (ENOTDIR
    for everything under it), which works as root too."""
    for child in path.iterdir():
        child.unlink()
    path.rmdir()
    path.write_text("not a directory\n")


def mend_directory(path: Path) -> None:
    path.unlink()
    path.mkdir(mode=0o700)


async def test_a_state_file_that_cannot_be_written_holds_the_demotion_back_until_it_can(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    where = tmp_path / "db"
    config = make_config(tmp_path, state_file=str(where / "state.json"))
    host, prober, log = FakeHost.handbook(), FakeProber(), RecordingLog()
    sup = Supervisor(config, host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(3.5)
        assert (where / "state.json").exists()
        break_directory(where)
        host.link("em2", up=False)
        await trio.sleep_until(30.5)
        # nothing changed that could not be recorded first, and the daemon is still here
        assert host.commands == []
        assert sup.telemetry.state_write_errors >= 25  # retried every round
        assert sup.status.telemetry.state_write_errors == sup.telemetry.state_write_errors
        errors = [(e, kw) for lv, e, kw in log.lines if lv == "error"]
        assert errors, "the failed write was not logged"
        event, fields = errors[0]
        assert event == "cannot write the state file; holding back"
        assert fields["file"] == config.state_file
        assert fields["waiting"] == "demote (sync)"
        assert len(errors) <= 3  # rate-limited, not one per round
        mend_directory(where)
        await trio.sleep_until(31.5)
        assert host.commands == [("advskew", "carp0", {10: 240}), ("advskew", "carp1", {20: 240})]
        saved = json.loads((where / "state.json").read_text())
        assert saved["demoted"] is True
        assert {v["baseline"] for v in saved["vhids"]} == {0}
    assert "state file written again" in log.events("notice")


async def test_maintenance_that_cannot_be_recorded_is_refused(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    where = tmp_path / "db"
    config = make_config(tmp_path, state_file=str(where / "state.json"))
    host, prober, log = FakeHost.handbook(), FakeProber(), RecordingLog()
    sup = Supervisor(config, host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(3.5)
        break_directory(where)
        with pytest.raises(OSError):
            sup.set_maintenance(True)
        await trio.sleep_until(5.5)
        assert not sup.memory.maintenance
        assert host.commands == []


async def test_a_state_file_deleted_while_running_is_written_back_at_the_next_round(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    config = make_config(tmp_path)
    host, prober, log = FakeHost.handbook(skew=100), FakeProber(), RecordingLog()
    sup = Supervisor(config, host, prober, log, wall=trio.current_time)
    path = Path(config.state_file)
    async with running(sup):
        await trio.sleep_until(3.5)
        host.link("em2", up=False)
        await trio.sleep_until(4.5)
        assert not any("written back" in e for e in log.events())  # a first write is no news
        path.unlink()
        await trio.sleep_until(5.5)
        saved = json.loads(path.read_text())
        assert saved["demoted"] is True
        assert {v["baseline"] for v in saved["vhids"]} == {100}
    assert any("written back" in e for e in log.events("warning"))


# --- item 6: unreadable state files ---------------------------------------------------------


def aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".bad-*"))


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "demoted": true, "reasons": ["\xff\xfe"]}',  # invalid UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than the parser's recursion
        b'{"version": 1, "vhids": [{"interface": "carp0", "vhid": 10, "baseline": 9999, '
        b'"target": 240, "seen": 240}]}',  # an advskew no kernel has
        b'{"version": 1, "vhids": [{"interface": "carp0", "vhid": 0, "baseline": 0, '
        b'"target": 240, "seen": 240}]}',  # vhid 0
        b"\x00" * 64,
    ],
    ids=["utf8", "nesting", "advskew", "vhid", "nul"],
)
def test_any_unreadable_state_file_is_set_aside_and_a_fresh_memory_used(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    loaded = state.load(str(path))
    assert loaded.memory == d.Memory()
    assert loaded.note is not None
    assert "moved to" in loaded.note
    assert not path.exists()
    assert [p.read_bytes() for p in aside(path)] == [content]


def test_a_fifo_or_a_huge_file_at_the_state_path_is_set_aside_without_blocking(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    loaded = state.load(str(fifo))  # opening a FIFO for reading would wait for a writer
    assert loaded.note is not None
    assert "not a regular file" in loaded.note
    assert len(aside(fifo)) == 1
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(state.MAX_SIZE + 1)
    loaded = state.load(str(huge))
    assert loaded.note is not None
    assert "too large" in loaded.note
    assert len(aside(huge)) == 1


def test_a_directory_at_the_state_path_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.mkdir()
    with pytest.raises(state.StatePathError, match="is a directory"):
        state.load(str(path))
    assert state.check_path(str(path)) == (
        f"state_file: {path} is a directory; it must name a file"
    )
    assert state.check_path(str(tmp_path / "missing.json")) is None
