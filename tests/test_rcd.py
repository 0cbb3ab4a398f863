"""rc.d/carpd_py: the pexp it computes finds the daemon that rc.subr(8) starts.

Linux has no rc.subr, so the real script runs under an OpenBSD-compatible ksh against a
stand-in rc.subr written below: it starts the daemon the way OpenBSD's rc.subr r1.160 does
(su(1) running `/bin/sh -c "${daemon} ${daemon_flags}"`; without rc_bg the start is over when
that command returns, and a start that takes daemon_timeout is a timeout) and finds it with
the same `pgrep`/`pkill -xf "${pexp}"`. The daemon is an installed-like console script with
the "#!" line (or the /bin/sh wrapper) pip writes; it detaches at once and sleeps, except that
`-n` runs the real configuration check. The last tests run the real carpd-py on the simulated
host under the same script.

Tools: loksh (OpenBSD's ksh) or mksh, and pgrep/pkill (Debian package procps). Missing ones
skip these tests, except under CI=true, where a missing tool fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from carpd_py.sim.harness import Harness

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "rc.d" / "carpd_py"
DAEMON_LINE = 'daemon="/usr/local/bin/carpd-py"\n'
SOURCE_LINE = ". /etc/rc.d/rc.subr\n"
DEADLINE = 30.0  # seconds any one command of a test may take
DAEMON_TIMEOUT = 15  # carpd_py_timeout: how long rc.subr waits for a start or stop

# Written for this test, reduced to what decides the daemon's argv and how it is found: the
# same defaults and rc.conf.local overrides, the same pexp, the same su(1) command line, the
# rc_bg start (the daemon runs in the foreground of the shell su started; once rc_check finds
# it, SIGALRM ends that shell and the daemon carries on), pgrep/pkill -xf "${pexp}", and the
# runfile that keeps pexp from start for the later actions. Left out: rtables,
# daemon_logger, daemon_execdir's login class, rc_pre/rc_post, -d/-f, restart, the root check.
RC_SUBR = r"""
_rc_actions="start stop reload check configtest"

_rc_err() {
	print -r -- "$1" >&2
	exit 1
}

_rc_exit() {
	print -r -- "($1)"
	[[ $1 == @(ok|killed) ]] && exit 0
	exit 1
}

_rc_quiet() {
	"$@" >/dev/null 2>&1
}

rc_exec() {
	local _su="su -fl -c ${daemon_class} -s /bin/sh ${daemon_user} -c"
	${_su} "${daemon_execdir:+cd ${daemon_execdir} && } $@"
}

rc_start() {
	rc_exec "${daemon} ${daemon_flags}"
}

rc_check() {
	pgrep -xf "${pexp}" >/dev/null
}

_rc_signal() {
	pkill -"$1" -xf "${pexp}"
}

rc_reload() {
	_rc_signal HUP
}

rc_stop() {
	_rc_signal TERM
}

_rc_wait_for_start() {
	# Beside rc_start. With rc_bg=YES rc_start does not return while the daemon runs: once
	# rc_check finds the daemon, SIGALRM ends the children of the rc.d script's shell,
	# that is the shell su started, which had forked the daemon; rc_start returns 142.
	trap '' ALRM
	while ((SECONDS < daemon_timeout)); do
		rc_check && [ X"${rc_bg}" = X"YES" ] && break
		sleep .5
	done
	pkill -ALRM -P $$
}

_rc_write_runfile() {
	mkdir -p "${_RC_RUNFILE%/*}" &&
		print -r -- "daemon_flags=${daemon_flags}
pexp=${pexp}" >"${_RC_RUNFILE}"
}

_rc_read_runfile() {
	local _l
	[ -f "${_RC_RUNFILE}" ] || return 0
	while IFS= read -r _l; do
		case ${_l} in
		daemon_flags=*) daemon_flags=${_l#*=} ;;
		pexp=*) pexp=${_l#*=} ;;
		esac
	done <"${_RC_RUNFILE}"
}

rc_cmd() {
	local _ret _waiter
	[[ " ${_rc_actions} " == *" $1 "* ]] || _rc_err "usage: $0 start|stop|reload|check|configtest"
	[[ $1 == start ]] || _rc_read_runfile
	case $1 in
	check)
		print -n -- "${_name}"
		rc_check && _rc_exit ok
		_rc_exit failed
		;;
	configtest)
		print -n -- "${_name}"
		_rc_quiet rc_configtest && _rc_exit ok
		_rc_exit failed
		;;
	start)
		rc_check && exit 0
		print -n -- "${_name}"
		if typeset -f rc_configtest >/dev/null; then
			_rc_quiet rc_configtest || _rc_exit failed
		fi
		_rc_quiet _rc_wait_for_start &
		_waiter=$!
		_rc_quiet rc_start
		_ret=$?
		kill ${_waiter} 2>/dev/null
		wait ${_waiter}
		[[ ${_ret} == @(0|142) ]] || _rc_exit failed
		[[ ${_ret} == 142 && X"${rc_bg}" != X"YES" ]] && _rc_exit timeout
		_rc_write_runfile
		_rc_exit ok
		;;
	stop)
		rc_check || exit 0
		print -n -- "${_name}"
		rc_stop || _rc_exit failed
		while ((SECONDS < daemon_timeout)); do
			rc_check || break
			sleep .5
		done
		_ret=ok
		rc_check && _rc_signal KILL && _ret=killed
		rm -f "${_RC_RUNFILE}"
		_rc_exit ${_ret}
		;;
	reload)
		print -n -- "${_name}"
		rc_check || _rc_exit failed
		if typeset -f rc_configtest >/dev/null; then
			_rc_quiet rc_configtest || _rc_exit failed
		fi
		rc_reload || _rc_exit failed
		_rc_exit ok
		;;
	esac
}

_rc_conf() {
	# /etc/rc.conf.local: NAME_flags, NAME_timeout and NAME_user override the script's values
	local _l
	[ -f @RCCONF@ ] || return 0
	while IFS= read -r _l; do
		case ${_l} in
		"${_name}_flags="*) _rcflags=${_l#*=} ;;
		"${_name}_timeout="*) _rctimeout=${_l#*=} ;;
		"${_name}_user="*) _rcuser=${_l#*=} ;;
		esac
	done <@RCCONF@
}

_name=${0##*/}
[[ ${_name} == +([_[:alpha:]])*([_[:alnum:]]) ]] || _rc_err "invalid rc.d script name: ${_name}"
[ -n "${KSH_VERSION}" ] || _rc_err "$0: wrong shell, use /bin/ksh"
[ -n "${daemon}" ] || _rc_err "$0: daemon is not set"
_RC_RUNFILE=@RUNDIR@/${_name}

_rc_conf
daemon_class=daemon
[ -z "${daemon_timeout}" ] && daemon_timeout=30
[ -z "${daemon_user}" ] && daemon_user=root
[ -n "${_rcflags}" ] && daemon_flags=${_rcflags}
[ -n "${_rctimeout}" ] && daemon_timeout=${_rctimeout}
[ -n "${_rcuser}" ] && daemon_user=${_rcuser}
unset _rcflags _rctimeout _rcuser
# as rc.subr: the shell strips quotes from daemon_flags when it starts the daemon
pexp="$(eval echo ${daemon}${daemon_flags:+ ${daemon_flags}})"
"""

# OpenBSD's su(1) sets up the login class and user, then execs the shell with "-c COMMAND"
# (it does not fork). This one keeps the caller's user. Its /bin/sh must fork the command,
# as OpenBSD's ksh does: Debian's dash does.
SU = """#!/bin/sh
shell=/bin/sh
while getopts a:c:fKLlms: opt; do
	case $opt in
	s) shell=$OPTARG ;;
	esac
done
shift $((OPTIND - 1))
shift
exec "$shell" "$@"
"""

# The console script pip would install, with the same "#!" form; SHEBANG is filled in. Like
# carpd-py without -d it detaches (fork, setsid, stdio to /dev/null) and the parent exits 0.
DAEMON = """SHEBANG
import json
import os
import signal
import sys
import time

LOG = LOGFILE


def note(*entry):
    with open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\\n")


note("argv", *sys.argv)
if "-n" in sys.argv[1:]:
    from carpd_py.daemon import main

    sys.exit(main())
if os.fork():
    sys.exit(0)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
signal.signal(signal.SIGHUP, lambda signum, frame: note("signal", signum))
deadline = time.monotonic() + 120  # never outlives a broken test for long
while time.monotonic() < deadline:
    time.sleep(0.05)
"""

CONFIG = """state_file = "{tmp}/state.json"
[control]
socket = "{tmp}/carpd-py.sock"
"""


def need(names: tuple[str, ...], package: str) -> str:
    """The first of `names` on PATH; skip without it, or fail under CI=true."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    message = f"{' or '.join(names)} not found (Debian package {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(message + ": CI must install it")
    pytest.skip(message)


@dataclass(frozen=True)
class Rig:
    tmp: Path
    ksh: str
    script: Path
    daemon: Path
    config: Path
    log: Path
    runfile: Path
    env: dict[str, str]

    def rc(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.ksh, str(self.script), action],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )

    def entries(self) -> list[list[object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def runfile_pexp(self) -> str:
        for line in self.runfile.read_text().splitlines():
            if line.startswith("pexp="):
                return line.removeprefix("pexp=")
        raise AssertionError(f"no pexp in {self.runfile}")


def daemons(daemon: Path) -> list[psutil.Process]:
    """Processes running `daemon` as a script: its path is an argument of their own."""
    found = []
    for proc in psutil.process_iter(["cmdline", "ppid"]):
        cmdline: list[str] = list(proc.info["cmdline"] or [])
        if str(daemon) in cmdline:
            found.append(proc)
    # A command the daemon is spawning carries its argv between fork and exec: not a daemon.
    pids = {p.pid for p in found}
    return [p for p in found if p.info["ppid"] not in pids]


def kill_leftovers(tmp: Path) -> None:
    """Kill, by pid, what a failed test may have left: processes naming our tmp dir."""
    for proc in psutil.process_iter(["cmdline"]):
        cmdline: list[str] = list(proc.info["cmdline"] or [])
        if proc.pid != os.getpid() and any(str(tmp) in arg for arg in cmdline):
            try:
                proc.kill()
                proc.wait(timeout=5)
            except psutil.Error:
                pass


def make_rig(
    tmp: Path,
    shebang: str,
    *,
    body: str = DAEMON,
    config: str = CONFIG,
    source: Path = SCRIPT,
    timeout: int = DAEMON_TIMEOUT,
) -> Rig:
    ksh = need(("loksh", "mksh"), "mksh")
    need(("pgrep",), "procps")
    need(("pkill",), "procps")
    assert not any(c.isspace() for c in str(tmp))
    bindir = tmp / "bin"
    bindir.mkdir()
    su = bindir / "su"
    su.write_text(SU)
    su.chmod(0o755)
    log = tmp / "daemon.log"
    daemon = bindir / "carpd-py"
    daemon.write_text(body.replace("SHEBANG", shebang).replace("LOGFILE", repr(str(log))))
    daemon.chmod(0o755)
    config_path = tmp / "carpd-py.conf"
    config_path.write_text(config.format(tmp=tmp))
    rcconf = tmp / "rc.conf.local"
    rcconf.write_text(f"carpd_py_flags=-f {config_path}\ncarpd_py_timeout={timeout}\n")
    rundir = tmp / "run"
    subr = tmp / "rc.subr"
    subr.write_text(RC_SUBR.replace("@RCCONF@", str(rcconf)).replace("@RUNDIR@", str(rundir)))

    text = source.read_text()
    assert text.count(DAEMON_LINE) == 1, f"{source}: expected one line {DAEMON_LINE!r}"
    assert text.count(SOURCE_LINE) == 1, f"{source}: expected one line {SOURCE_LINE!r}"
    (tmp / "rc.d").mkdir()
    script = tmp / "rc.d" / "carpd_py"
    script.write_text(
        text.replace(DAEMON_LINE, f'daemon="{daemon}"\n').replace(SOURCE_LINE, f". {subr}\n")
    )
    script.chmod(0o755)

    # The venv's bin first: "#!/usr/bin/env python3" must find a python with carpd_py.
    path = os.pathsep.join([str(bindir), os.path.dirname(sys.executable), os.environ["PATH"]])
    env = {"PATH": path, "HOME": str(tmp), "LC_ALL": "C"}
    return Rig(tmp, ksh, script, daemon, config_path, log, rundir / "carpd_py", env)


@pytest.fixture
def cleanup(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    kill_leftovers(tmp_path)


PY = sys.executable
SHEBANGS = {
    # what pip writes for a console script: the python it was installed with
    "pip": (f"#!{PY}", [PY]),
    # an interpreter option: the kernel passes the rest of the line as one argument
    "option": (f"#!{PY} -s", [PY, "-s"]),
    # env(1) execs the interpreter under the name as written
    "env": ("#!/usr/bin/env python3", ["python3"]),
    "env-S": ("#!/usr/bin/env -S python3 -s", ["python3", "-s"]),
}


def lifecycle(rig: Rig, argv: list[str]) -> None:
    """start, check, reload, stop, check: each finds exactly the daemon started, by `argv`."""
    started = time.monotonic()
    start = rig.rc("start")
    took = time.monotonic() - started
    assert (start.returncode, start.stdout, start.stderr) == (0, "carpd_py(ok)\n", "")
    # The daemon detaches: the start ends when it has, not when daemon_timeout runs out.
    assert took < DAEMON_TIMEOUT - 3, f"start took {took:.1f}s"

    running = daemons(rig.daemon)
    assert [p.cmdline() for p in running] == [argv]
    pexp = rig.runfile_pexp()
    assert pexp == " ".join(argv)
    pgrep = subprocess.run(
        ["pgrep", "-xf", pexp], capture_output=True, text=True, timeout=DEADLINE, check=False
    )
    assert pgrep.stdout.split() == [str(running[0].pid)]

    check = rig.rc("check")
    assert (check.returncode, check.stdout, check.stderr) == (0, "carpd_py(ok)\n", "")

    reload = rig.rc("reload")
    assert (reload.returncode, reload.stdout) == (0, "carpd_py(ok)\n")
    deadline = time.monotonic() + 10
    while ["signal", 1] not in rig.entries() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ["signal", 1] in rig.entries(), "SIGHUP did not reach the daemon"

    stop = rig.rc("stop")
    assert (stop.returncode, stop.stdout, stop.stderr) == (0, "carpd_py(ok)\n", "")
    assert daemons(rig.daemon) == []
    assert not rig.runfile.exists()

    check = rig.rc("check")
    assert (check.returncode, check.stdout) == (1, "carpd_py(failed)\n")


@pytest.mark.parametrize("form", list(SHEBANGS))
def test_pexp_finds_the_daemon_rc_subr_started(form: str, cleanup: Path) -> None:
    shebang, interpreter = SHEBANGS[form]
    rig = make_rig(cleanup, shebang)
    lifecycle(rig, [*interpreter, str(rig.daemon), "-f", str(rig.config)])


def pip_wrapper(interpreter: str) -> str:
    """What pip (distlib's ScriptMaker._build_shebang) writes when `interpreter` has a space
    or makes a "#!" line longer than 127 bytes: a /bin/sh script that execs it, and that
    Python reads as a string."""
    quoted = f'"{interpreter}"' if " " in interpreter else interpreter
    return f"#!/bin/sh\n'''exec' {quoted} \"$0\" \"$@\"\n' '''"


@pytest.mark.parametrize("kind", ["space", "long"])
def test_pexp_reads_the_interpreter_from_pips_shell_wrapper(kind: str, cleanup: Path) -> None:
    # The venv seen through a directory whose name pip cannot put on a "#!" line.
    name = "python env" if kind == "space" else "v" * 120
    venv = cleanup / name
    venv.symlink_to(Path(PY).parent.parent, target_is_directory=True)
    interpreter = str(venv / "bin" / Path(PY).name)
    assert (" " in interpreter) == (kind == "space")
    assert len(interpreter) + 3 > 127 or " " in interpreter
    rig = make_rig(cleanup, pip_wrapper(interpreter))
    lifecycle(rig, [interpreter, str(rig.daemon), "-f", str(rig.config)])


def test_a_missing_daemon_file_says_nothing_on_check_or_stop(cleanup: Path) -> None:
    rig = make_rig(cleanup, f"#!{PY}")
    rig.daemon.unlink()
    # rcctl ls runs check for every script: no "open: No such file or directory" there
    check = rig.rc("check")
    assert (check.returncode, check.stdout, check.stderr) == (1, "carpd_py(failed)\n", "")
    stop = rig.rc("stop")
    assert (stop.returncode, stop.stdout, stop.stderr) == (0, "", "")
    start = rig.rc("start")
    assert (start.returncode, start.stdout) == (1, "carpd_py(failed)\n")


def test_a_shell_script_daemon_that_is_not_pips_wrapper_is_reported(cleanup: Path) -> None:
    wrapper = '#!/bin/sh\nexec /usr/local/bin/python3 /usr/local/lib/carpd-py/run "$@"\n'
    rig = make_rig(cleanup, wrapper, body="SHEBANG")
    check = rig.rc("check")
    assert (check.returncode, check.stdout) == (1, "carpd_py(failed)\n")
    assert check.stderr == (
        f"carpd_py: cannot tell which interpreter runs {rig.daemon} (a sh script without"
        " pip's exec line): check, stop and reload will not find the daemon\n"
    )


def test_configtest_runs_the_daemon_with_dash_n(cleanup: Path) -> None:
    rig = make_rig(cleanup, f"#!{PY}")
    result = rig.rc("configtest")
    assert (result.returncode, result.stdout, result.stderr) == (0, "carpd_py(ok)\n", "")
    assert rig.entries() == [["argv", str(rig.daemon), "-n", "-f", str(rig.config)]]
    assert daemons(rig.daemon) == []


def test_a_bad_config_fails_configtest_and_start(cleanup: Path) -> None:
    rig = make_rig(cleanup, f"#!{PY}")
    rig.config.write_text("interval = 0\n")
    result = rig.rc("configtest")
    assert (result.returncode, result.stdout) == (1, "carpd_py(failed)\n")
    # rc.subr runs rc_configtest before it starts anything
    start = rig.rc("start")
    assert (start.returncode, start.stdout) == (1, "carpd_py(failed)\n")
    assert daemons(rig.daemon) == []
    assert all("-n" in entry for entry in rig.entries())
    assert len(rig.entries()) == 2


def test_script_shape() -> None:
    """What rc.subr(8) and rcctl(8) expect of a package's rc.d script."""
    lines = SCRIPT.read_text().splitlines()
    assert lines[0] == "#!/bin/ksh"
    assert lines[-1] == "rc_cmd $1"
    assert os.access(SCRIPT, os.X_OK)
    source = lines.index(SOURCE_LINE.rstrip("\n"))
    assert lines.index(DAEMON_LINE.rstrip("\n")) < source
    assert lines.index('daemon_flags="-f /etc/carpd-py.conf"') < source
    # carpd-py detaches once ready: rc_start's status is the start's outcome, no rc_bg
    assert not any(line.startswith("rc_bg") for line in lines)
    assert next(i for i, line in enumerate(lines) if line.startswith("[ -n")) > source
    # SIGHUP (the default) reloads; carpd-py runs as root (the default daemon_user)
    assert not any(line.startswith(("rc_reload=", "daemon_user=")) for line in lines)


# The real carpd-py, as pip installs its console script, on the simulated host.
REAL_DAEMON = """SHEBANG
import sys

from carpd_py.daemon import main

sys.exit(main())
"""


def real_rig(tmp: Path, **over: object) -> tuple[Rig, Harness]:
    h = Harness(tmp / "pair")
    # Generous deadlines: the first host read runs a simulated ifconfig on a busy machine.
    h.configure(
        "A", log={"socket": str(tmp / "no-syslog.sock")}, platform={"command_timeout": 10.0}, **over
    )
    text = h.nodes["A"].config_path.read_text().replace("{", "{{").replace("}", "}}")
    return make_rig(tmp, f"#!{PY}", body=REAL_DAEMON, config=text, timeout=60), h


def test_the_real_daemon_is_ready_when_start_returns_and_stop_finds_it(cleanup: Path) -> None:
    rig, h = real_rig(cleanup)
    start = rig.rc("start")
    assert (start.returncode, start.stdout, start.stderr) == (0, "carpd_py(ok)\n", "")
    # carpd-py detached once ready: its control socket answers the moment start is over
    status = h.carpctl("A", "status")
    assert status.returncode == 0, status.stderr
    [daemon] = daemons(rig.daemon)
    assert daemon.cmdline() == [PY, str(rig.daemon), "-f", str(rig.config)]
    check = rig.rc("check")
    assert (check.returncode, check.stdout) == (0, "carpd_py(ok)\n")
    stop = rig.rc("stop")
    assert (stop.returncode, stop.stdout, stop.stderr) == (0, "carpd_py(ok)\n", "")
    assert daemons(rig.daemon) == []
    assert h.carpctl("A", "status").returncode == 1


def test_the_real_daemon_that_cannot_start_fails_rc_start(cleanup: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        rig, _ = real_rig(cleanup, metrics={"listen": f"127.0.0.1:{taken.getsockname()[1]}"})
        start = rig.rc("start")
    assert (start.returncode, start.stdout) == (1, "carpd_py(failed)\n")
    assert daemons(rig.daemon) == []
    assert rig.rc("check").returncode == 1
