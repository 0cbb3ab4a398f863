"""A real syslog daemon (rsyslogd) on a private socket receives carpd-py's lines.

What an operator must see in /var/log/messages (demote, restore, role change, errors) must
arrive at notice or higher, with ident carpd_py[PID] and no timestamp of ours.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from carpd_py.sim.harness import Harness, console_script, wait_until

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
WAIT = 20.0

CONF = """\
global(workDirectory="{work}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket}" CreatePath="on" UseSysTimeStamp="off")
template(name="t" type="string"
         string="%syslogseverity-text%.%syslogfacility-text% %syslogtag%%msg%\\n")
*.* action(type="omfile" file="{out}" template="t")
"""


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    if not os.path.exists(RSYSLOGD):
        if os.environ.get("CI") == "true":
            pytest.fail("rsyslogd is missing: .ci/run installs Debian's rsyslog")
        pytest.skip("rsyslogd is not installed")
    work = tmp_path / "rsyslog"
    work.mkdir()
    sock, out = tmp_path / "log.sock", tmp_path / "messages"
    conf = work / "rsyslog.conf"
    conf.write_text(CONF.format(work=work, socket=sock, out=out))
    with open(work / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(conf), "-i", str(work / "pid")],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_until(sock.exists, 10, "rsyslogd's socket")
        yield sock, out
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_events_reach_syslog_with_their_priorities(
    tmp_path: Path, rsyslog: tuple[Path, Path]
) -> None:
    sock, out = rsyslog
    h = Harness(tmp_path / "pair")
    h.configure("A", log={"socket": str(sock), "facility": "daemon", "level": "info"})
    # Started without -d: carpd-py detaches once ready and logs to syslog, not to stderr.
    config = h.nodes["A"].config_path
    started = subprocess.run(
        [console_script("carpd-py"), "-f", str(config)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=WAIT,
        check=False,
    )
    assert (started.returncode, started.stdout, started.stderr) == (0, b"", b"")
    [daemon] = [
        p for p in psutil.process_iter(["cmdline"]) if str(config) in (p.info["cmdline"] or [])
    ]

    def text() -> str:
        return out.read_text() if out.exists() else ""

    try:
        wait_until(lambda: "check up" in text(), WAIT, "the daemon logs")
        h.world.set_link("A", "em2", up=False)
        wait_until(lambda: "set carp1 vhid 20 advskew 240" in text(), WAIT, "demotion logged")
        h.world.set_link("A", "em2", up=True)
        wait_until(lambda: "set carp1 vhid 20 advskew 0" in text(), WAIT, "restore logged")
    finally:
        daemon.terminate()
        daemon.wait(10)
    wait_until(lambda: "stopped demoted=no" in text(), WAIT, "the stop logged")
    lines = out.read_text().splitlines()
    ident = f"carpd_py[{daemon.pid}]:"
    ours = [line for line in lines if ident in line]
    assert ours, lines

    def level_of(fragment: str) -> str:
        found = [line.split(" ", 1)[0] for line in ours if fragment in line]
        assert found, f"no line with {fragment!r} in {ours}"
        return found[0]

    assert level_of("started checks=sync") == "notice.daemon"
    assert level_of("managing carp0 vhid 10") == "info.daemon"
    assert level_of("demoting reasons=sync") == "notice.daemon"
    assert level_of("set carp0 vhid 10 advskew 240") == "notice.daemon"
    assert level_of("carp0 vhid 10 MASTER -> BACKUP") == "notice.daemon"
    assert level_of("restoring baselines") == "notice.daemon"
    assert level_of("stopped demoted=no") == "notice.daemon"
    # One event a line, `event key=value`, and no timestamp of ours before the message.
    demote = next(line for line in ours if "demoting" in line)
    assert re.fullmatch(
        rf"notice\.daemon {re.escape(ident)} demoting reasons=sync method=advskew", demote
    )
