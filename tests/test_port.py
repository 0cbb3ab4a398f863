"""pkg/openbsd: the OpenBSD port. What can be checked off OpenBSD is checked here.

- pkg/PLIST lists exactly what the port installs. The build is done the port's way: an sdist
  made from this tree (the port's distfile), a wheel built from the unpacked sdist without
  build isolation (MODPY_PYBUILD = setuptools), installed under a fake prefix with bytecode
  for optimisation levels 0 and 1 (what lang/python's installer step compiles), then the
  port's post-install (manual pages to man/, the sample config to share/examples). The
  installed paths are mapped back to the PLIST's variables (${MODPY_VERSION},
  ${MODPY_PYCACHE}, ${MODPY_PYC_MAGIC_TAG}, ${MODPY_PYOEXTENSION}, ${MODPY_DISTV}).
- The Makefile's RUN_DEPENDS are the four packages pyproject.toml depends on.
- pkg/carpd_py.rc after SUBST_CMD (${TRUEPREFIX}, ${SYSCONFDIR}, ${MODPY_BIN}) runs under
  ksh against the same stand-in rc.subr as rc.d/carpd_py (test_rcd.py), and finds the
  daemon that the port's `#!${MODPY_BIN}` console script starts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

import pytest

from carpd_py import __version__

from .test_rcd import PY, kill_leftovers, lifecycle, make_rig

ROOT = Path(__file__).resolve().parent.parent
PORT = ROOT / "pkg" / "openbsd"
DEADLINE = 300.0
# What the source tree holds besides the sdist's own content (never copied for the build).
SKIP = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")
# pip writes these into the dist-info; the ports' installer does not (no PLIST lists them).
PIP_ONLY = ("INSTALLER", "REQUESTED", "direct_url.json")


def run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=DEADLINE, check=False
    )
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def port_install(tmp: Path) -> Path:
    """Build and install as the port does; return the fake ${PREFIX}."""
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*SKIP), symlinks=True)
    sdist = run(
        [PY, "-c", "from setuptools import build_meta as b; print(b.build_sdist('dist'))"], src
    ).split()[-1]
    assert sdist == f"carpd_py-{__version__}.tar.gz"  # the port's DISTNAME
    with tarfile.open(src / "dist" / sdist) as tar:
        tar.extractall(tmp / "work", filter="data")
    wrksrc = tmp / "work" / f"carpd_py-{__version__}"
    wheel = run(
        [PY, "-c", "from setuptools import build_meta as b; print(b.build_wheel('dist'))"], wrksrc
    ).split()[-1]
    prefix = tmp / "prefix"
    run(
        # --ignore-installed: else pip would first uninstall the carpd-py this test runs from
        [PY, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-compile",
         "--ignore-installed", "--disable-pip-version-check", "--prefix", str(prefix),
         str(wrksrc / "dist" / wheel)],
        tmp,
    )  # fmt: skip
    site = prefix / site_packages()
    for dist_info in site.glob("*.dist-info"):
        for name in PIP_ONLY:
            (dist_info / name).unlink(missing_ok=True)
    run([PY, "-m", "compileall", "-q", str(site)], tmp)
    run([PY, "-O", "-m", "compileall", "-q", str(site)], tmp)
    # post-install
    for section in ("5", "8"):
        (prefix / "man" / f"man{section}").mkdir(parents=True)
        for page in (prefix / "share" / "man" / f"man{section}").iterdir():
            page.rename(prefix / "man" / f"man{section}" / page.name)
        (prefix / "share" / "man" / f"man{section}").rmdir()
    (prefix / "share" / "man").rmdir()
    examples = prefix / "share" / "examples" / "carpd-py"
    examples.mkdir(parents=True)
    shutil.copy(wrksrc / "etc" / "carpd-py.conf", examples)
    return prefix


def site_packages() -> str:
    return os.path.relpath(sysconfig.get_path("purelib", vars={"base": "/"}), "/")


def as_plist(prefix: Path) -> set[str]:
    """The installed files and the directories the package owns, in the PLIST's terms."""
    site = site_packages()
    tag = sys.implementation.cache_tag  # cpython-311
    owned = (site + "/", "share/examples/carpd-py")
    out = set()
    for path in sorted(prefix.rglob("*")):
        rel = path.relative_to(prefix).as_posix()
        if path.is_dir():
            if not any(rel.startswith(o) for o in owned):
                continue  # bin, man/man8, ...: the system's (mtree) directories
            rel += "/"
        if rel.startswith(("man/man5/", "man/man8/")) and not path.is_dir():
            rel = "@man " + rel
        elif rel == "bin/" or rel.startswith(("man/", "share/man")):
            continue
        rel = rel.replace(site, "lib/python${MODPY_VERSION}/site-packages")
        rel = rel.replace(f"carpd_py-{__version__}.dist-info", "carpd_py-${MODPY_DISTV}.dist-info")
        if rel.endswith("/__pycache__/"):
            rel = "${MODPY_COMMENT}" + rel.replace("__pycache__/", "${MODPY_PYCACHE}/")
        else:
            rel = rel.replace("__pycache__/", "${MODPY_PYCACHE}")
            rel = rel.replace(f".{tag}.opt-1.pyc", ".${MODPY_PYC_MAGIC_TAG}${MODPY_PYOEXTENSION}")
            rel = rel.replace(f".{tag}.pyc", ".${MODPY_PYC_MAGIC_TAG}pyc")
        out.add(rel)
    return out


def plist() -> list[str]:
    return (PORT / "pkg" / "PLIST").read_text().splitlines()


def test_plist_lists_exactly_what_the_port_installs(tmp_path: Path) -> None:
    prefix = port_install(tmp_path)
    installed = as_plist(prefix)
    listed = [line for line in plist() if not line.startswith("@") or line.startswith("@man ")]
    assert len(listed) == len(set(listed)), "a PLIST line twice"
    missing = sorted(installed - set(listed))
    extra = sorted(set(listed) - installed)
    assert (missing, extra) == ([], []), "PLIST out of date: + missing, - not installed"
    # the console scripts the rc script and the admin run
    assert {"bin/carpd-py", "bin/carpctl"} <= installed


def test_plist_annotations() -> None:
    lines = plist()
    assert "@rcscript ${RCDIR}/carpd_py" in lines
    sample = lines.index("@sample ${SYSCONFDIR}/carpd-py.conf")
    assert lines[sample - 1] == "share/examples/carpd-py/carpd-py.conf"
    # the config names the control socket and may name hook commands: root's alone
    assert lines[sample - 2 : sample + 2] == [
        "@mode 0600",
        "share/examples/carpd-py/carpd-py.conf",
        "@sample ${SYSCONFDIR}/carpd-py.conf",
        "@mode",
    ]


def test_makefile_run_depends_are_the_python_dependencies() -> None:
    text = (PORT / "Makefile").read_text()
    assert re.search(r"^MODULES =\s+lang/python$", text, re.M)
    assert re.search(r"^MODPY_PYBUILD =\s+setuptools$", text, re.M)
    assert re.search(rf"^MODPY_DISTV =\s+{re.escape(__version__)}$", text, re.M)
    block = re.search(r"^RUN_DEPENDS =((?:.*\\\n)*.*)$", text, re.M)
    assert block is not None
    depends = block[1].replace("\\", " ").split()
    # The OpenBSD package paths of pyproject.toml's dependencies (openbsd/ports tree).
    assert sorted(depends) == [
        "devel/py-structlog",
        "devel/py-trio",
        "sysutils/py-prometheus_client",
        "sysutils/py-psutil",
    ]


# What the OpenBSD ports tree ships (openbsd/ports: devel/py-trio, sysutils/py-psutil,
# devel/py-structlog, sysutils/py-prometheus_client; the lowest of the recent versions found
# there; psutil: its patches are for psutil/arch/openbsd/, which appeared in 5.9.0).
OPENBSD_SHIPS = {
    "trio": "0.24.0",
    "psutil": "5.9.0",
    "structlog": "24.4.0",
    "prometheus-client": "0.14.1",
}


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_dependency_floors_are_at_or_below_what_openbsd_ships() -> None:
    with open(ROOT / "pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    floors = {}
    for spec in dependencies:
        m = re.fullmatch(r"([a-z-]+)>=([\d.]+),<[\d.]+", spec)
        if m:
            floors[m[1]] = m[2]
    assert sorted(floors) == sorted(OPENBSD_SHIPS)
    for name, floor in floors.items():
        assert version(floor) <= version(OPENBSD_SHIPS[name]), name


def port_rc_script(tmp: Path, daemon_prefix: str) -> Path:
    """pkg/carpd_py.rc after the ports' SUBST_CMD, as /etc/rc.d/carpd_py."""
    text = (PORT / "pkg" / "carpd_py.rc").read_text()
    for var, value in {
        "${TRUEPREFIX}": daemon_prefix,
        "${SYSCONFDIR}": "/etc",
        "${MODPY_BIN}": PY,
    }.items():
        assert var in text
        text = text.replace(var, value)
    out = tmp / "carpd_py.rc"
    out.write_text(text)
    return out


def test_the_port_rc_script_finds_the_daemon(tmp_path: Path) -> None:
    script = port_rc_script(tmp_path, "/usr/local")
    rig = make_rig(tmp_path, f"#!{PY}", source=script)
    try:
        lifecycle(rig, [PY, str(rig.daemon), "-f", str(rig.config)])
    finally:
        kill_leftovers(tmp_path)


def test_the_port_rc_script_shape() -> None:
    lines = (PORT / "pkg" / "carpd_py.rc").read_text().splitlines()
    assert lines[0] == "#!/bin/ksh"
    assert lines[-1] == "rc_cmd $1"
    source = lines.index(". /etc/rc.d/rc.subr")
    assert lines.index('daemon="${TRUEPREFIX}/bin/carpd-py"') < source
    assert lines.index('pexp="${MODPY_BIN} ${daemon}${daemon_flags:+ ${daemon_flags}}"') > source
    assert not any(line.startswith(("rc_bg", "rc_reload=", "daemon_user=")) for line in lines)


@pytest.mark.parametrize("name", ["Makefile", "pkg/DESCR"])
def test_port_files_are_plain(name: str) -> None:
    text = (PORT / name).read_text()
    assert text.endswith("\n")
    assert all(len(line.expandtabs()) <= 80 for line in text.splitlines())
