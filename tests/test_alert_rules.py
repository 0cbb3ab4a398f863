"""etc/prometheus/carpd-py-rules.yml: valid for promtool, and every alert unit-tested.

promtool comes with the Debian package `prometheus`. Outside CI a missing promtool skips these
tests; in CI (CI=true) it fails them, so that they cannot silently stop running.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .prometheus import tool

RULES_DIR = Path(__file__).resolve().parent.parent / "etc" / "prometheus"
RULES = RULES_DIR / "carpd-py-rules.yml"
RULE_TESTS = RULES_DIR / "carpd-py-rules.test.yml"


def promtool(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args],
        cwd=RULES_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def alert_blocks(text: str) -> dict[str, str]:
    """alert name -> the text of its rule, from one `- alert:` line to the next."""
    parts = re.split(r"^\s*- alert: (\S+)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def expectations(text: str) -> tuple[set[str], set[str]]:
    """(alerts a test expects to fire, alerts a test expects to stay quiet)."""
    fires: set[str] = set()
    quiet: set[str] = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.fullmatch(r"\s*alertname: (\S+)", line)
        if m is None:
            continue
        following = lines[i + 1].strip()
        if following == "exp_alerts: []":
            quiet.add(m[1])
        elif following == "exp_alerts:" and lines[i + 2].strip().startswith("- exp_labels:"):
            fires.add(m[1])
    return fires, quiet


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_blocks(RULES.read_text()))} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    alerts = set(alert_blocks(RULES.read_text()))
    fires, quiet = expectations(RULE_TESTS.read_text())
    assert alerts, "no alerts found in the rules file"
    assert alerts - fires == set(), "alerts with no test where they fire"
    assert alerts - quiet == set(), "alerts with no test where they stay quiet"
    assert (fires | quiet) - alerts == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_severity_and_words_for_the_admin() -> None:
    for name, block in alert_blocks(RULES.read_text()).items():
        assert re.search(r"^\s*severity: (critical|warning|info)$", block, re.M), name
        assert re.search(r"^\s*summary: \S", block, re.M), name
        assert re.search(r"^\s*description: \S", block, re.M), name
