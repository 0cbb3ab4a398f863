"""`carpctl inspect`: one read of the host, nothing changed, exactly the documented document."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from carpd_py.sim.harness import Harness, console_script, toml_document

DATA = Path(__file__).parent / "data" / "ifconfig"

HANDBOOK_A: dict[str, Any] = {
    "carp": [
        {
            "interface": "carp0",
            "vhid": 10,
            "state": "MASTER",
            "advbase": 1,
            "advskew": 0,
            "carpdev": "em0",
            "carppeer": None,
            "status": "master",
        },
        {
            "interface": "carp1",
            "vhid": 20,
            "state": "MASTER",
            "advbase": 1,
            "advskew": 0,
            "carpdev": "em1",
            "carppeer": None,
            "status": "master",
        },
    ],
    "pfsync": {
        "interface": "pfsync0",
        "up": True,
        "syncdev": "em2",
        "syncpeer": None,
        "maxupd": 128,
        "defer": False,
        "syncdev_status": "active",
    },
    "groups": {"carp": {"demote": 0}},
    "sysctl": {"net.inet.carp.allow": 1, "net.inet.carp.preempt": 1, "net.inet.carp.log": 2},
    "links": {"em0": "active", "em1": "active", "em2": "active"},
    "warnings": [],
}

SPEC_KEYS = {
    "carp": set(HANDBOOK_A["carp"][0]),
    "pfsync": set(HANDBOOK_A["pfsync"]),
}


def contract(doc: dict[str, Any]) -> dict[str, Any]:
    """The document restricted to the keys the issue specifies (more keys are fine)."""
    out = dict(doc)
    out["carp"] = [{k: v for k, v in c.items() if k in SPEC_KEYS["carp"]} for c in doc["carp"]]
    if doc["pfsync"] is not None:
        out["pfsync"] = {k: v for k, v in doc["pfsync"].items() if k in SPEC_KEYS["pfsync"]}
    return out


def inspect(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script("carpctl"), "inspect", "-f", str(config), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_inspect_json_of_the_handbook_node_a(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    config = h.configure("A")
    before = h.world.read()
    done = inspect(config, "--json")
    assert done.returncode == 0, done.stderr
    assert contract(json.loads(done.stdout)) == HANDBOOK_A
    assert h.world.read() == before  # nothing changed


def test_inspect_table_for_people(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.world.sysctl_set("B", "preempt", 0)
    done = inspect(h.configure("B"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "INTERFACE", "VHID", "STATE", "ADVBASE", "ADVSKEW", "CARPDEV", "STATUS", "MANAGED",
    ]  # fmt: skip
    assert lines[1].split() == ["carp0", "10", "BACKUP", "1", "100", "em0", "backup", "yes"]
    assert "pfsync: pfsync0 up syncdev em2 (active)" in lines
    assert "group carp: demote count 0" in lines
    assert any(line.startswith("warning: net.inet.carp.preempt=0") for line in lines)


# --- fixed output, as a real OpenBSD host would print it -----------------------------------


def fake_host(tmp_path: Path, ifconfig: str, demote: int = 0, preempt: int = 1) -> dict[str, str]:
    """`ifconfig`/`sysctl` executables that print fixed text (and refuse any set command)."""
    (tmp_path / "ifconfig.txt").write_text(ifconfig)
    script = f"""#!{sys.executable}
import sys
args = sys.argv[1:]
if args == []:
    sys.stdout.write(open({str(tmp_path / "ifconfig.txt")!r}).read())
elif args == ["-g", "carp"]:
    print("carp: carp demote count {demote}")
else:
    sys.exit("fake ifconfig: refusing " + " ".join(args))
"""
    sysctl = f"""#!{sys.executable}
print("net.inet.carp.allow=1\\nnet.inet.carp.preempt={preempt}\\nnet.inet.carp.log=2")
"""
    paths = {}
    for name, text in (("ifconfig", script), ("sysctl", sysctl)):
        path = tmp_path / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        paths[name] = str(path)
    return paths


def config_for(tmp_path: Path, platform: dict[str, str], **over: Any) -> Path:
    doc: dict[str, Any] = {"state_file": str(tmp_path / "state.json"), "platform": platform}
    doc.update(over)
    path = tmp_path / "carpd-py.conf"
    path.write_text(toml_document(doc))
    return path


def test_inspect_real_output_with_everything_an_admin_must_fix(tmp_path: Path) -> None:
    text = (DATA / "em2_no_carrier.txt").read_text() + (DATA / "carp_multi_ip.txt").read_text()
    platform = fake_host(tmp_path, text, demote=1, preempt=0)
    config = config_for(
        tmp_path,
        platform,
        demote={"interfaces": ["carp2", "carp7"]},
        sync={"interface": "pfsync0"},
    )
    done = inspect(config, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [(c["interface"], c["vhid"], c["state"], c["advskew"]) for c in doc["carp"]] == [
        ("carp2", 1, "MASTER", 0),
        ("carp2", 2, "BACKUP", 100),
    ]
    assert doc["groups"] == {"carp": {"demote": 1}}
    assert doc["sysctl"]["net.inet.carp.preempt"] == 0
    assert doc["pfsync"] is None
    warnings = doc["warnings"]
    assert warnings[0].startswith("net.inet.carp.preempt=0")
    assert "carp7: configured in demote.interfaces but missing" in warnings
    assert "pfsync0: configured in sync.interface but missing" in warnings


@pytest.mark.parametrize(
    "fixture", sorted(p.name for p in DATA.glob("*.txt")), ids=lambda n: n.removesuffix(".txt")
)
def test_inspect_reads_every_reference_variant(tmp_path: Path, fixture: str) -> None:
    platform = fake_host(tmp_path, (DATA / fixture).read_text())
    done = inspect(config_for(tmp_path, platform), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) >= {"carp", "pfsync", "groups", "sysctl", "links", "warnings"}
    for entry in doc["carp"]:
        assert set(entry) >= SPEC_KEYS["carp"]


def test_inspect_of_unparsable_output_is_a_clear_error(tmp_path: Path) -> None:
    platform = fake_host(tmp_path, "this is not ifconfig output\n")
    done = inspect(config_for(tmp_path, platform), "--json")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("carpctl: ")
    assert "Traceback" not in done.stderr


def test_inspect_with_a_missing_ifconfig_is_a_clear_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    done = inspect(config_for(tmp_path, {"ifconfig": missing, "sysctl": missing}))
    assert done.returncode == 1
    assert f"{missing}: cannot run: No such file or directory" in done.stderr
    assert "Traceback" not in done.stderr
    assert not os.path.exists(missing)
