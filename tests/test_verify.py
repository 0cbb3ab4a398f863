"""The handbook's checks: parsers pinned to the OpenBSD functions that print each format, and
every check ok / warning / failure on the simulated pair (both reports given to verify.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
from prometheus_client import CollectorRegistry, generate_latest

from carpd_py.config import Config, DemoteConfig, parse_config
from carpd_py.nodereport import NodeReport
from carpd_py.pfparse import PfError, parse_ifaces, parse_info, parse_rules, rules_digest, verdict
from carpd_py.relayparse import RelaydError, hosts_up, parse_listen, parse_summary
from carpd_py.sim import services
from carpd_py.sim.harness import Harness
from carpd_py.sim.state import Address
from carpd_py.verifier import Verified, VerifyCollector
from carpd_py.verify import NO_PEER, verify
from carpd_py.verifyio import local_report

# pfctl_parser.c print_status(): "%-44s" status line, "%15s\n\n" debug, then the State Table.
PFCTL_SI = (
    "Status: Enabled for 3 days 04:05:06              Debug: err\n"
    "\n"
    "State Table                          Total             Rate\n"
    "  current entries                      812               \n"
    "  half-open tcp                          3               \n"
    "  searches                        98213412          340.2/s\n"
    "Counters\n"
    "  match                            4102344           14.2/s\n"
)

# pfctl.c pfctl_show_rules() -> print_rule(): the handbook's pf.conf as pfctl -sr prints it.
HANDBOOK_SR = (
    "pass on em0 proto carp all\n"
    "pass on em1 proto carp all\n"
    "pass on em2 proto pfsync all\n"
    "block drop all\n"
    "pass on em1 all flags S/SA\n"
    "pass out on em0 proto tcp from (em0) to any flags S/SA\n"
    "pass out on em0 proto udp from (em0) to any\n"
    "pass out on em0 proto icmp from (em0) to any\n"
)

# relayctl.c main() header and show_summary_msg(): "%-4u\t%-8s\t%-24s\t%-7s\t%s\n".
RELAYCTL_SUMMARY = (
    "Id  \tType    \tName                    \tAvlblty\tStatus\n"
    "1   \trelay   \twww                     \t       \tactive\n"
    "1   \ttable   \tweb_backends:80         \t       \tactive (1 hosts)\n"
    "1   \thost    \t10.10.10.11             \t100.00%\tup\n"
    "2   \thost    \t10.10.10.12             \t0.00%  \tdown\n"
    "\t        \ttotal: 0/33 checks, error: tcp connect failed\n"
)


def test_print_status_is_read() -> None:
    """pfctl_parser.c print_status(): enabled, running time, current entries."""
    info = parse_info(PFCTL_SI)
    assert (info.enabled, info.states, info.running_for) == (True, 812, "3 days 04:05:06")
    assert not parse_info("Status: Disabled                              Debug: err\n\n"
                          "State Table  Total  Rate\n  current entries  0\n").enabled  # fmt: skip
    with pytest.raises(PfError, match="line 1"):
        parse_info("pfctl: /dev/pf: Permission denied\n")


def test_print_rule_lines_are_read_and_pf_decides_by_the_last_match() -> None:
    """pfctl_parser.c print_rule(): action, direction, quick, on IF, proto, all; and pf's
    last-match-wins: the handbook's own order (`pass ... proto carp` before `block all`)
    blocks carp and pfsync, which verify reports."""
    rules = parse_rules(HANDBOOK_SR)
    assert [r.action for r in rules][:4] == ["pass", "pass", "pass", "block"]
    assert (rules[0].interface, rules[0].proto, rules[0].all) == ("em0", "carp", True)
    assert rules[5].direction == "out"
    assert not rules[5].all
    decided = verdict(rules, "em0", ("egress",), "carp", "in")
    assert decided is not None
    assert decided.text == "block drop all"
    quick = parse_rules("block drop all\npass quick on em0 proto carp all\n")
    assert verdict(quick, "em0", (), "carp", "in") == quick[1]
    # -v: "@N " prefixes and statistics lines; the digest ignores both.
    verbose = "@0 pass on em0 proto carp all\n  [ Evaluations: 9 Packets: 1 ]\n"
    assert rules_digest(parse_rules(verbose)) == rules_digest(parse_rules(HANDBOOK_SR)[:1])
    with pytest.raises(PfError, match="line 1"):
        parse_rules("No ALTQ support in kernel\n")


def test_print_iface_skip() -> None:
    """pfctl_table.c print_iface(): `NAME (skip)` with -v."""
    assert parse_ifaces("all\nem2\nlo (skip)\nlo0 (skip)\npfsync0 (skip)\n") == {
        "all": False, "em2": False, "lo": True, "lo0": True, "pfsync0": True}  # fmt: skip


def test_relayctl_show_summary() -> None:
    """relayctl.c show_summary_msg(), print_table_status(), print_host_status()."""
    summary = parse_summary(RELAYCTL_SUMMARY)
    (www,) = summary.services
    assert (www.type, www.name, www.tables[0].name, www.tables[0].base) == (
        "relay", "www", "web_backends:80", "web_backends")  # fmt: skip
    assert hosts_up(summary, relay="www") == (1, 2)
    assert hosts_up(summary, table="web_backends") == (1, 2)
    assert hosts_up(summary, table="other") is None
    with pytest.raises(RelaydError, match="line 1"):
        parse_summary("relayctl: connect: /var/run/relayd.sock: No such file or directory\n")


def test_relayd_conf_listen() -> None:
    """relayd.conf(5): `listen on ADDRESS port N` in a relay block, macros expanded."""
    conf = 'vip = "10.10.10.1"\nrelay "www" {\n  listen on $vip port 80\n}\nrelay api {\n}\n'
    assert parse_listen(conf) == {"www": ("10.10.10.1",), "api": ()}


# --- the checks on the simulated pair ---------------------------------------------------------


@pytest.fixture
def pair(tmp_path: Path) -> Harness:
    h = Harness(tmp_path)
    for name in h.nodes:
        h.configure(name)
    return h


def config_of(h: Harness, node: str) -> Config:
    return parse_config(h.nodes[node].config_path.read_text(), str(h.nodes[node].config_path))


def reports(h: Harness) -> tuple[NodeReport, NodeReport]:
    a = trio.run(local_report, config_of(h, "A"), 0)
    b = trio.run(local_report, config_of(h, "B"), 0)
    # What the pair channel carries: the report goes through JSON.
    return a, NodeReport.from_json(b.to_json())


def results(h: Harness) -> tuple[str, dict[str, dict[str, Any]]]:
    a, b = reports(h)
    doc = verify(a, b, config_of(h, "A"))
    return doc["result"], {c["check"]: c for c in doc["checks"]}


CONTRACT = ("one_master", "same_vhids", "preempt", "pfsync", "pf_rules", "rules_match",
            "states", "demote_stuck", "relayd")  # fmt: skip


def test_healthy_pair_passes_every_check(pair: Harness) -> None:
    result, checks = results(pair)
    assert result == "ok", checks
    assert set(CONTRACT) <= set(checks)
    assert all(c["result"] == "ok" and c["fix"] == "" for c in checks.values())
    assert set(checks["one_master"]["nodes"]) == {"A", "B"}


def test_without_a_peer_every_pair_check_is_a_warning(pair: Harness) -> None:
    a, _ = reports(pair)
    doc = verify(a, None, config_of(pair, "A"))
    assert doc["result"] == "warning"
    for check in doc["checks"]:
        assert check["result"] == "warning", check
        assert check["nodes"]["peer"] == NO_PEER
        assert check["fix"].startswith("run carpd-py on both nodes")


def test_master_master_fails_one_master(pair: Harness) -> None:
    """The troubleshooting section's MASTER/MASTER: B also claims carp0 (as it does when it
    hears no advertisement from A); the report as B would send it."""
    a, b = reports(pair)
    carp = [{**c.__dict__, "state": "MASTER"} for c in b.carp]
    b = NodeReport.from_json({**b.to_json(), "carp": carp})
    doc = verify(a, b, config_of(pair, "A"))
    check = next(c for c in doc["checks"] if c["check"] == "one_master")
    assert check["result"] == "failure"
    assert doc["result"] == "failure"
    assert "vhid 10: MASTER on A and B" in check["nodes"]["A"]
    assert "MASTER/MASTER" in check["fix"]


def test_different_vhids_fail_same_vhids(pair: Harness) -> None:
    a, b = reports(pair)
    carp = tuple(c if c.vhid != 20 else type(c)(**{**c.__dict__, "vhid": 21}) for c in b.carp)
    b = NodeReport.from_json({**b.to_json(), "carp": [c.__dict__ for c in carp]})
    doc = verify(a, b, config_of(pair, "A"))
    check = next(c for c in doc["checks"] if c["check"] == "same_vhids")
    assert check["result"] == "failure"
    assert "only here: vhid 21" in check["nodes"]["B"]


@pytest.mark.parametrize(("name", "value", "want"), [("preempt", 0, "failure"),
                                                      ("log", 1, "warning")])  # fmt: skip
def test_preempt_and_log_level(pair: Harness, name: str, value: int, want: str) -> None:
    pair.world.sysctl_set("B", name, value)
    _, checks = results(pair)
    assert checks["preempt"]["result"] == want
    assert f"{name}={value}" in checks["preempt"]["nodes"]["B"]


def test_sync_link_without_carrier_fails_pfsync(pair: Harness) -> None:
    pair.world.set_link("A", "em2", up=False)
    _, checks = results(pair)
    assert checks["pfsync"]["result"] == "failure"
    assert "no carrier" in checks["pfsync"]["nodes"]["A"]


def test_missing_pass_proto_pfsync_fails_pf_rules(pair: Harness) -> None:
    services.set_pf(pair.world.path, "B", remove_rule="pass on em2 proto pfsync all")
    _, checks = results(pair)
    assert checks["pf_rules"]["result"] == "failure"
    assert "no `pass on em2 proto pfsync`" in checks["pf_rules"]["nodes"]["B"]
    assert checks["pf_rules"]["nodes"]["A"].startswith("pf enabled")
    assert checks["rules_match"]["result"] == "failure"


def test_pfsync_passed_everywhere_is_a_pf_rules_warning(pair: Harness) -> None:
    for node in "AB":
        services.set_pf(pair.world.path, node, add_rule="pass proto pfsync all")
    _, checks = results(pair)
    assert checks["pf_rules"]["result"] == "warning"
    assert "beyond the SYNC interface" in checks["pf_rules"]["nodes"]["A"]


def test_pf_disabled_fails_pf_rules(pair: Harness) -> None:
    services.set_pf(pair.world.path, "A", enabled=False)
    _, checks = results(pair)
    assert checks["pf_rules"]["result"] == "failure"
    assert "pf DISABLED" in checks["pf_rules"]["nodes"]["A"]


def test_pfctl_missing_is_a_warning_never_a_pass(pair: Harness) -> None:
    Path(pair.nodes["B"].ifconfig).with_name("pfctl").unlink()
    _, checks = results(pair)
    for name in ("pf_rules", "rules_match", "states"):
        assert checks[name]["result"] == "warning", name
        assert "cannot run" in checks[name]["nodes"]["B"]


def test_rules_that_differ_fail_rules_match(pair: Harness) -> None:
    services.set_pf(pair.world.path, "B", add_rule="pass in on em0 proto tcp to port 22")
    _, checks = results(pair)
    assert checks["rules_match"]["result"] == "failure"
    assert "rulesets differ" in checks["rules_match"]["nodes"]["A"]


def test_state_counts_far_apart_fail_states(pair: Harness) -> None:
    services.set_pf(pair.world.path, "B", states=3)
    _, checks = results(pair)
    assert checks["states"]["result"] == "failure"
    services.set_pf(pair.world.path, "B", states=110)
    assert results(pair)[1]["states"]["result"] == "ok"


def test_demote_counter_stuck_and_explained(pair: Harness) -> None:
    pair.world.ifconfig("B", "-g", "carp", "carpdemote", "50")
    _, checks = results(pair)
    assert checks["demote_stuck"]["result"] == "failure"
    assert "no kernel reason" in checks["demote_stuck"]["nodes"]["B"]
    pair.world.set_link("B", "em2", up=False)  # pfsync demotes while its link is down
    _, checks = results(pair)
    assert checks["demote_stuck"]["result"] == "warning"
    assert "kernel reasons: syncdev em2 no carrier" in checks["demote_stuck"]["nodes"]["B"]


def test_a_demote_count_whose_owner_is_unknown_is_a_warning(pair: Harness) -> None:
    """Method carpdemote, carpd-py not running: its share cannot be known."""
    pair.world.ifconfig("A", "-g", "carp", "carpdemote", "50")
    config = replace(config_of(pair, "A"), demote=DemoteConfig(method="carpdemote"))
    a = trio.run(local_report, config, None)
    doc = verify(a, None, config)
    check = next(c for c in doc["checks"] if c["check"] == "demote_stuck")
    assert check["result"] == "warning"
    assert "cannot tell whose" in check["nodes"]["A"]
    assert check["fix"].startswith("demote counter stuck high")


def test_relayd_hosts_down_and_relayd_not_running(pair: Harness) -> None:
    services.set_relayd(pair.world.path, "B", hosts_up={"10.10.10.11": False})
    _, checks = results(pair)
    assert checks["relayd"]["result"] == "warning"
    assert "1/2 hosts up" in checks["relayd"]["nodes"]["B"]
    services.set_relayd(pair.world.path, "B", running=False)
    _, checks = results(pair)
    assert checks["relayd"]["result"] == "failure"
    assert checks["relayd"]["nodes"]["B"] == "relayd not running"


def test_carpctl_verify_exit_codes(pair: Harness) -> None:
    done = pair.carpctl("A", "verify", "--json")
    assert done.returncode == 0, done.stderr  # warnings only: no peer without a daemon
    services.set_pf(pair.world.path, "A", enabled=False)
    done = pair.carpctl("A", "verify")
    assert done.returncode == 1
    assert "FAILURE  pf_rules" in done.stdout
    assert "fix: enable pf" in done.stdout


def test_metrics_of_the_checks(pair: Harness) -> None:
    """carpd_verify_check, carpd_pf_states, carpd_pf_rules_info/_match, carpd_relay_hosts_up."""
    services.set_relayd(pair.world.path, "B", hosts_up={"10.10.10.12": False})
    services.set_pf(pair.world.path, "B", add_rule="pass in on em0 proto tcp to port 22")
    a, b = reports(pair)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        VerifyCollector(lambda: Verified(0.0, a, b, verify(a, b, config_of(pair, "A"))))
    )
    text = generate_latest(registry).decode()
    assert 'carpd_verify_check{check="rules_match"} 2.0' in text
    assert 'carpd_verify_check{check="one_master"} 0.0' in text
    assert 'carpd_pf_states{node="A"} 120.0' in text
    assert f'carpd_pf_rules_info{{digest="{a.pf_digest}"}} 1.0' in text
    assert "carpd_pf_rules_match 0.0" in text
    assert 'carpd_relay_hosts_up{node="B",relay="www"} 1.0' in text
    assert 'carpd_relay_hosts{node="B",relay="www"} 2.0' in text
    empty = CollectorRegistry(auto_describe=False)
    empty.register(VerifyCollector(lambda: None))
    assert "carpd_verify" not in generate_latest(empty).decode()


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {},
        {"node": ""},
        {"node": "B", "carp": [{"interface": "carp0"}]},
        {"node": "B", "pf_states": "12"},
        {"node": "B", "pf_enabled": 1},
        {"node": "B", "sysctl": {"net.inet.carp.preempt": True}},
        {"node": "B", "relays": [{"name": "www", "listen": "10.0.0.1", "up": 1, "hosts": 2}]},
        {"node": "B", "errors": {"pfctl": None}},
        {"node": "x" * 5000},
    ],
)
def test_a_bad_peer_report_is_refused_with_a_clear_message(bad: Any) -> None:
    with pytest.raises(ValueError, match="not a node report"):
        NodeReport.from_json(bad)


def test_a_report_survives_json_and_ignores_fields_it_does_not_know(pair: Harness) -> None:
    a, _ = reports(pair)
    assert NodeReport.from_json(json.loads(json.dumps(a.to_json()))) == a
    assert NodeReport.from_json({**a.to_json(), "later": {"x": 1}}) == a


def test_a_node_whose_host_cannot_be_read_gives_warnings_not_verdicts(pair: Harness) -> None:
    pair.world.set_fault("B", garbage=True)
    a, b = reports(pair)
    doc = verify(a, b, config_of(pair, "A"))
    checks = {c["check"]: c for c in doc["checks"]}
    for name in ("one_master", "same_vhids", "preempt", "pfsync", "demote_stuck"):
        assert checks[name]["result"] == "warning", name
    assert doc["result"] == "warning"


def test_carpctl_verify_says_on_stderr_why_the_peer_is_missing(pair: Harness) -> None:
    done = pair.carpctl("A", "verify", "--json")
    json.loads(done.stdout)  # stdout stays one JSON document
    assert "carpd-py is not running" in done.stderr
    assert "no peer report" in done.stderr


def test_the_handbooks_own_pf_conf_order_blocks_carp_and_pfsync(pair: Harness) -> None:
    """The chapter's skeleton puts `block all` after `pass on $wan proto carp` and `pass on
    $sync proto pfsync`; pf's last match wins, so as written it blocks both."""
    for node in "AB":
        services.set_pf(pair.world.path, node, rules=HANDBOOK_SR.splitlines())
    _, checks = results(pair)
    seen = checks["pf_rules"]["nodes"]["A"]
    assert checks["pf_rules"]["result"] == "failure"
    assert "carp in on em0 blocked by `block drop all`" in seen
    assert "pfsync in on em2 blocked by `block drop all`" in seen
    assert "carp in on em1" not in seen  # `pass on em1 all` comes after the block
    assert checks["rules_match"]["result"] == "ok"


def test_pf_decides_through_interface_groups_and_quick() -> None:
    """A pass on an interface group (`on egress`) or a `quick` pass before `block all`."""
    rules = parse_rules("block drop all\npass quick on egress proto carp all\n")
    assert verdict(rules, "em0", ("egress",), "carp", "in") == rules[1]
    assert verdict(rules, "em1", (), "carp", "in") == rules[0]
    negated = parse_rules("pass on ! em2 proto pfsync all\n")
    assert negated[0].may_apply("em0", (), "pfsync", "in")
    assert not negated[0].may_apply("em2", (), "pfsync", "in")
    narrowed = parse_rules("block drop all\npass on em0 proto carp from 192.0.2.1 to any\n")
    assert verdict(narrowed, "em0", (), "carp", "in") == narrowed[0]  # may not match all carp


def test_a_pass_that_names_addresses_is_not_called_blocked(pair: Harness) -> None:
    """`pass on em0 proto carp from <peer>` after `block all` may well pass carp: verify does
    not call it blocked (it cannot know the packets), but still sees the pass."""
    rules = services.read_model(pair.world.path)["A"]["pf"]["rules"]
    peer_only = "pass on em0 proto carp from 203.0.113.3 to any"
    narrowed = [peer_only if r == "pass on em0 proto carp all" else r for r in rules]
    for node in "AB":
        services.set_pf(pair.world.path, node, rules=narrowed)
    _, checks = results(pair)
    assert checks["pf_rules"]["result"] == "ok", checks["pf_rules"]


def test_sync_subnets_that_differ_fail_pfsync(pair: Harness) -> None:
    with pair.world.modify() as state:
        em2 = state.node("B").get("em2")
        assert em2 is not None
        em2.addrs = [Address("10.255.254.3", 30)]
    _, checks = results(pair)
    assert checks["pfsync"]["result"] == "failure"
    assert "subnet 10.255.254.0/30 (SYNC subnets differ)" in checks["pfsync"]["nodes"]["B"]
