"""Exec probes: real processes, real deadlines, a real process group killed."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
import trio

from carpd_py.probes import ExecResult, exec_probe

SH = "/bin/sh"


def gone(pid: int) -> bool:
    """The process is dead: no such pid, or a zombie waiting for its reaper."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


async def test_exit_zero_is_good() -> None:
    with trio.fail_after(5):
        result = await exec_probe([SH, "-c", "echo; echo '  reachable  '; echo more"], 2.0)
    assert result.ok
    assert result.returncode == 0
    assert result.output == "reachable"  # first non-blank line, stripped
    assert result.error is None
    assert result.summary == "exit 0: reachable"
    assert 0 <= result.duration < 2.0


async def test_non_zero_exit_is_bad_and_stderr_comes_first() -> None:
    with trio.fail_after(5):
        result = await exec_probe([SH, "-c", "echo out; echo 'gw down' >&2; exit 3"], 2.0)
    assert result == ExecResult(False, 3, result.duration, "gw down")
    assert result.summary == "exit 3: gw down"


async def test_death_by_signal() -> None:
    with trio.fail_after(5):
        result = await exec_probe([SH, "-c", "kill -9 $$"], 2.0)
    assert not result.ok
    assert result.returncode == -9
    assert result.summary == "killed by signal 9"


async def test_long_output_is_cut() -> None:
    with trio.fail_after(5):
        result = await exec_probe([SH, "-c", "printf '%0500d\\n' 0"], 2.0)
    assert result.output == "0" * 200


async def test_timeout_is_bad_and_bounded() -> None:
    with trio.fail_after(5):
        result = await exec_probe(["/bin/sleep", "30"], 0.3)
    assert not result.ok
    assert result.returncode is None
    assert result.error == "/bin/sleep: no exit within 0.3s, process group killed"
    assert result.summary == result.error
    assert 0.3 <= result.duration < 1.0


async def test_timeout_kills_the_grandchildren(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f"/bin/sleep 30 </dev/null >/dev/null 2>&1 & echo $! > {pidfile}; wait"
    with trio.fail_after(5):
        result = await exec_probe([SH, "-c", script], 0.5)
        assert result.returncode is None
        pid = int(pidfile.read_text())
        for _ in range(100):  # SIGKILL was sent; the kernel may take a moment
            if gone(pid):
                break
            await trio.sleep(0.02)
    assert gone(pid)


async def test_a_command_that_cannot_start_is_bad(tmp_path: Path) -> None:
    script = tmp_path / "probe"
    script.write_text("#!/bin/sh\nexit 0\n")  # not executable
    with trio.fail_after(5):
        missing = await exec_probe([str(tmp_path / "nonexistent")], 1.0)
        denied = await exec_probe([str(script)], 1.0)
    assert missing.error == f"{tmp_path}/nonexistent: cannot run: No such file or directory"
    assert denied.error == f"{script}: cannot run: Permission denied"
    for result in (missing, denied):
        assert not result.ok
        assert result.returncode is None


async def test_empty_argv_is_a_bug() -> None:
    with pytest.raises(ValueError, match="empty argv"):
        await exec_probe([], 1.0)
