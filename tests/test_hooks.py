"""Hooks run once per event, in order, with the details in the environment, never blocking."""

from __future__ import annotations

from pathlib import Path

import trio

from carpd_py.config import HooksConfig
from carpd_py.hooks import HookRunner

from .fakes import RecordingLog

APPEND = '/bin/echo "$CARPD_EVENT ${CARPD_REASONS:-} ${CARPD_INTERFACE:-} ${CARPD_TO:-}" >> "$0"'


def hooks(out: Path, timeout: float = 5.0, **kw: tuple[str, ...]) -> HooksConfig:
    argv = ("/bin/sh", "-c", APPEND, str(out))
    return HooksConfig(
        on_demote=kw.get("on_demote", argv),
        on_restore=kw.get("on_restore", argv),
        on_role_change=kw.get("on_role_change", argv),
        timeout=timeout,
    )


async def test_hooks_run_once_per_event_in_order_with_details(tmp_path: Path) -> None:
    out = tmp_path / "events"
    log = RecordingLog()
    runner = HookRunner(hooks(out), log)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            started = trio.current_time()
            runner.fire("demote", {"reasons": "sync"})
            runner.fire("role_change", {"interface": "carp0", "vhid": "10", "to": "BACKUP"})
            runner.fire("restore", {"demoted_for": "12.0"})
            assert trio.current_time() - started < 0.01  # fire() only queues
            await runner.drained()
            nursery.cancel_scope.cancel()
    assert out.read_text().splitlines() == [
        "demote sync  ",
        "role_change  carp0 BACKUP",
        "restore   ",
    ]
    assert log.events("error") == []


async def test_a_hanging_hook_is_killed_and_the_next_one_still_runs(tmp_path: Path) -> None:
    out = tmp_path / "events"
    log = RecordingLog()
    config = hooks(out, timeout=0.5, on_demote=("/bin/sh", "-c", "sleep 30 & sleep 30"))
    runner = HookRunner(config, log)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            runner.fire("demote", {"reasons": "sync"})
            runner.fire("restore", {})
            await runner.drained()
            nursery.cancel_scope.cancel()
    assert out.read_text() == "restore   \n"
    assert log.events("error") == ["hook timed out, killed"]


async def test_failures_and_output_are_logged(tmp_path: Path) -> None:
    log = RecordingLog()
    config = HooksConfig(
        on_demote=("/bin/sh", "-c", "echo going down; echo oops >&2; exit 3"),
        on_restore=(str(tmp_path / "missing"),),
    )
    runner = HookRunner(config, log)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            runner.fire("demote", {})
            runner.fire("restore", {})
            runner.fire("role_change", {})  # not configured: nothing runs
            await runner.drained()
            nursery.cancel_scope.cancel()
    assert (
        "info",
        "hook output",
        {"hook": "on_demote", "stream": "stdout", "line": "going down"},
    ) in log.lines
    assert (
        "info",
        "hook output",
        {"hook": "on_demote", "stream": "stderr", "line": "oops"},
    ) in log.lines
    assert log.events("error") == ["hook failed", "hook could not be started"]
