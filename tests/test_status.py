"""carpd_py.status: the `carpctl status` document and its text, from hand-built Status values."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Any

from carpd_py import __version__
from carpd_py.config import Config, DemoteConfig, SyncConfig, UpstreamConfig
from carpd_py.decide import Memory, VhidRecord, vhid_map
from carpd_py.hysteresis import Check
from carpd_py.model import HostView
from carpd_py.pairing import PairStatus
from carpd_py.status import format_status, iso_utc, status_document
from carpd_py.supervisor import Status

from .fakes import carp, pfsync, phys

STARTED = 1764036000.0  # 2025-11-25T02:00:00Z
SINCE = 1764036100.5  # 2025-11-25T02:01:40Z
UPDATED = 1764036160.0  # 2025-11-25T02:02:40Z

CONFIG = Config(
    sync=SyncConfig(interface="pfsync0", peer="192.0.2.2"),
    upstream=(UpstreamConfig(name="isp", targets=("198.51.100.1", "198.51.100.2")),),
    path="/etc/carpd-py.conf",
)


def handbook_view(*, skew: int = 0, state: str = "MASTER", em2: str = "active") -> HostView:
    return HostView(
        interfaces=(
            phys("em0"),
            phys("em1"),
            phys("em2", em2),
            carp("carp0", "em0", (10, state, skew)),
            carp("carp1", "em1", (20, state, skew)),
            pfsync(),
        ),
        group_demote={"carp": 0},
        sysctl={"net.inet.carp.allow": 1, "net.inet.carp.preempt": 1},
    )


# Without [peer]: the same keys, saying so (scripts need no `in` tests).
ALONE: dict[str, Any] = {
    "peer": {
        "state": "off",
        "seen": None,
        "node": None,
        "reasons": [],
        "demoted": False,
        "maintenance": False,
        "roles": {},
    },
    "pair": {"withheld": [], "waiting": [], "split_brain": [], "split": False, "deeper": False},
}


def carp_row(interface: str, vhid: int, dev: str, state: str, advskew: int) -> dict[str, Any]:
    return {
        "interface": interface,
        "vhid": vhid,
        "state": state,
        "advbase": 1,
        "advskew": advskew,
        "carpdev": dev,
        "carppeer": None,
        "status": "master" if state == "MASTER" else "backup",
        "balancing": None,
        "managed": True,
    }


def demoted_by_sync() -> Status:
    """The sync link lost: both vhids held at 240, the upstream fine."""
    return Status(
        config=CONFIG,
        started=STARTED,
        updated=UPDATED,
        view=handbook_view(skew=240, state="BACKUP", em2="no carrier"),
        checks=MappingProxyType(
            {"sync": Check(up=False, bad=3, rounds=60), "upstream:isp": Check(up=True, good=60)}
        ),
        details=MappingProxyType(
            {"sync": "syncdev em2 no carrier, peer silent", "upstream:isp": "2/2 answered"}
        ),
        memory=Memory(
            demoted=True,
            since=SINCE,
            reasons=("sync",),
            vhids=vhid_map(
                {
                    ("carp1", 20): VhidRecord(baseline=0, target=240, seen=240),
                    ("carp0", 10): VhidRecord(baseline=0, target=240, seen=240),
                }
            ),
        ),
        warnings=("pfsync0: syncdev em2 has no carrier (no carrier)",),
    )


def test_demoted_by_sync_with_baselines() -> None:
    assert status_document(demoted_by_sync()) == {
        "version": __version__,
        "method": "advskew",
        "demoted": True,
        "reasons": ["sync"],
        "maintenance": False,
        "since": "2025-11-25T02:01:40Z",
        "since_epoch": SINCE,
        "checks": {
            "sync": {
                "up": False,
                "good": 0,
                "bad": 3,
                "detail": "syncdev em2 no carrier, peer silent",
            },
            "upstream:isp": {"up": True, "good": 60, "bad": 0, "detail": "2/2 answered"},
        },
        "carp": [
            carp_row("carp0", 10, "em0", "BACKUP", 240),
            carp_row("carp1", 20, "em1", "BACKUP", 240),
        ],
        "baselines": [
            {
                "interface": "carp0",
                "vhid": 10,
                "baseline": 0,
                "target": 240,
                "seen": 240,
                "held": True,
            },
            {
                "interface": "carp1",
                "vhid": 20,
                "baseline": 0,
                "target": 240,
                "seen": 240,
                "held": True,
            },
        ],
        "share": None,
        "warnings": ["pfsync0: syncdev em2 has no carrier (no carrier)"],
        "started": "2025-11-25T02:00:00Z",
        "updated": "2025-11-25T02:02:40Z",
        **ALONE,
    }


def test_demoted_by_sync_for_people() -> None:
    assert format_status(status_document(demoted_by_sync())) == (
        "DEMOTED (sync) since 2025-11-25T02:01:40Z\n"
        f"carpd-py {__version__}, method advskew, started 2025-11-25T02:00:00Z, "
        "last round 2025-11-25T02:02:40Z\n"
        "CHECK         VERDICT  GOOD  BAD  DETAIL\n"
        "sync          DOWN     0     3    syncdev em2 no carrier, peer silent\n"
        "upstream:isp  up       60    0    2/2 answered\n"
        "INTERFACE  VHID  STATE   ADVSKEW  BASELINE  CARPDEV  STATUS  MANAGED\n"
        "carp0      10    BACKUP  240      0 (held)  em0      backup  yes\n"
        "carp1      20    BACKUP  240      0 (held)  em1      backup  yes\n"
        "warning: pfsync0: syncdev em2 has no carrier (no carrier)\n"
    )


def not_demoted_carpdemote() -> Status:
    """Method carpdemote, every check up, our share given back; carp10 sorts after carp2."""
    config = Config(
        demote=DemoteConfig(method="carpdemote"),
        sync=SyncConfig(),
        path="/etc/carpd-py.conf",
    )
    view = HostView(
        interfaces=(
            phys("em0"),
            phys("em2"),
            carp("carp2", "em0", (2, "MASTER", 0)),
            carp("carp10", "em0", (10, "MASTER", 0), (11, "BACKUP", 100)),
            pfsync(),
        ),
        group_demote={"carp": 0},
    )
    return Status(
        config=config,
        started=STARTED,
        updated=UPDATED,
        view=view,
        checks=MappingProxyType({"sync": Check(up=True, good=120, rounds=130)}),
        details=MappingProxyType({"sync": "link up"}),
        memory=Memory(share=0, share_target=0),
    )


def test_not_demoted() -> None:
    multi = {"status": "master", "balancing": "ip"}
    assert status_document(not_demoted_carpdemote()) == {
        "version": __version__,
        "method": "carpdemote",
        "demoted": False,
        "reasons": [],
        "maintenance": False,
        "since": None,
        "since_epoch": None,
        "checks": {"sync": {"up": True, "good": 120, "bad": 0, "detail": "link up"}},
        "carp": [
            carp_row("carp2", 2, "em0", "MASTER", 0),
            {**carp_row("carp10", 10, "em0", "MASTER", 0), **multi},
            {**carp_row("carp10", 11, "em0", "BACKUP", 100), **multi},
        ],
        "baselines": [],
        "share": {"group": "carp", "counter": 0, "share": 0, "target": 0},
        "warnings": [],
        "started": "2025-11-25T02:00:00Z",
        "updated": "2025-11-25T02:02:40Z",
        **ALONE,
    }
    text = format_status(status_document(not_demoted_carpdemote()))
    assert text.splitlines()[0] == "not demoted"
    assert text.splitlines()[-1] == "group carp: demote count 0, our share 0"
    assert "carp10     11    BACKUP  100      -         em0      master  yes" in text


def never_read() -> Status:
    """Every host read so far failed; maintenance on from the state file; a refused vhid."""
    return Status(
        config=CONFIG,
        started=STARTED,
        updated=UPDATED,
        checks=MappingProxyType({"sync": Check(), "upstream:isp": Check(up=True, good=5)}),
        details=MappingProxyType({"upstream:isp": "2/2 answered"}),
        memory=Memory(
            maintenance=True,
            vhids=vhid_map({("carp0", 10): VhidRecord(baseline=0, target=0, seen=None)}),
            refused=frozenset({("carp1", 20)}),
        ),
        read_error="ifconfig: no answer within 2s, killed",
    )


def test_never_read() -> None:
    assert status_document(never_read()) == {
        "version": __version__,
        "method": "advskew",
        "demoted": False,
        "reasons": [],
        "maintenance": True,
        "since": None,
        "since_epoch": None,
        "checks": {
            "sync": {"up": None, "good": 0, "bad": 0, "detail": None},
            "upstream:isp": {"up": True, "good": 5, "bad": 0, "detail": "2/2 answered"},
        },
        "carp": [],
        "baselines": [
            {
                "interface": "carp0",
                "vhid": 10,
                "baseline": 0,
                "target": 0,
                "seen": None,
                "held": False,
            }
        ],
        "share": None,
        "warnings": [
            "the last host read failed: ifconfig: no answer within 2s, killed",
            "carp1 vhid 20: looked demoted already with no recorded baseline: "
            "left unmanaged until its advskew is set by hand",
        ],
        "started": "2025-11-25T02:00:00Z",
        "updated": "2025-11-25T02:02:40Z",
        **ALONE,
    }


def test_never_read_for_people() -> None:
    assert format_status(status_document(never_read())) == (
        "not demoted (maintenance is on: the demotion is pending)\n"
        f"carpd-py {__version__}, method advskew, started 2025-11-25T02:00:00Z, "
        "last round 2025-11-25T02:02:40Z\n"
        "CHECK         VERDICT  GOOD  BAD  DETAIL\n"
        "sync          pending  0     0    -\n"
        "upstream:isp  up       5     0    2/2 answered\n"
        "(no carp interface with a vhid)\n"
        "baseline carp0 vhid 10: 0, not on the host\n"
        "warning: the last host read failed: ifconfig: no answer within 2s, killed\n"
        "warning: carp1 vhid 20: looked demoted already with no recorded baseline: "
        "left unmanaged until its advskew is set by hand\n"
    )


def test_before_the_first_round() -> None:
    """The supervisor's very first Status: nothing known yet."""
    doc = status_document(Status(config=Config(), started=STARTED))
    assert doc == {
        "version": __version__,
        "method": "advskew",
        "demoted": False,
        "reasons": [],
        "maintenance": False,
        "since": None,
        "since_epoch": None,
        "checks": {},
        "carp": [],
        "baselines": [],
        "share": None,
        "warnings": [],
        "started": "2025-11-25T02:00:00Z",
        "updated": None,
        **ALONE,
    }
    assert format_status(doc) == (
        "not demoted\n"
        f"carpd-py {__version__}, method advskew, started 2025-11-25T02:00:00Z, "
        "last round none yet\n"
        "checks: none configured\n"
        "(the host has not been read yet)\n"
    )


def test_demoted_with_no_reason_left_and_maintenance() -> None:
    doc = status_document(demoted_by_sync())
    assert format_status({**doc, "reasons": []}).startswith(
        "DEMOTED (no reason left, waiting for the hold-down) since 2025-11-25T02:01:40Z\n"
    )
    both = {**doc, "reasons": ["maintenance", "sync"], "maintenance": True}
    assert format_status(both).startswith(
        "DEMOTED (maintenance, sync) since 2025-11-25T02:01:40Z\n"
    )


def test_a_since_that_is_no_time() -> None:
    """A state file may hold anything JSON allows, NaN too: never an answer that is not JSON."""
    status = demoted_by_sync()
    doc = status_document(replace(status, memory=replace(status.memory, since=float("nan"))))
    assert (doc["since"], doc["since_epoch"]) == (None, None)
    assert format_status(doc).startswith("DEMOTED (sync)\n")


def test_iso_utc() -> None:
    assert iso_utc(None) is None
    assert iso_utc(0.0) == "1970-01-01T00:00:00Z"
    assert iso_utc(SINCE) == "2025-11-25T02:01:40Z"
    assert iso_utc(float("nan")) is None
    assert iso_utc(1e300) is None


def with_peer() -> Status:
    """The direct SYNC cable pulled: both nodes lost sync, the demotion withheld."""
    peer_view = {
        "reasons": ["sync"],
        "demoted": False,
        "maintenance": False,
        "carp": [
            {"interface": "carp0", "vhid": 10, "state": "BACKUP", "advskew": 100, "managed": True},
            {"interface": "carp1", "vhid": 20, "state": "BACKUP", "advskew": 100, "managed": True},
        ],
    }
    return replace(
        demoted_by_sync(),
        memory=Memory(),
        view=handbook_view(skew=0, state="MASTER", em2="no carrier"),
        pair=PairStatus(
            state="up", seen=0.25, view=MappingProxyType(peer_view), node="fw2", withheld=("sync",)
        ),
    )


def test_the_peer_and_the_pair_in_the_document() -> None:
    doc = status_document(with_peer())
    assert doc["peer"] == {
        "state": "up",
        "seen": 0.25,
        "node": "fw2",
        "reasons": ["sync"],
        "demoted": False,
        "maintenance": False,
        "roles": {"carp0": "BACKUP", "carp1": "BACKUP"},
    }
    assert doc["pair"] == {
        "withheld": ["sync"],
        "waiting": [],
        "split_brain": [],
        "split": False,
        "deeper": False,
    }
    text = format_status(doc)
    assert "peer fw2: up, heard 0.2s ago\n" in text
    assert "\ncarp0    MASTER     BACKUP\n" in text
    assert "withheld: sync (the peer has it too: a failover would not help)" in text


def test_a_silent_peer_says_this_node_decides_alone() -> None:
    doc = status_document(replace(with_peer(), pair=PairStatus(state="unknown")))
    assert doc["peer"]["state"] == "unknown"
    assert doc["peer"]["seen"] is None
    assert "peer ?: unknown, never heard: this node decides alone" in format_status(doc)
