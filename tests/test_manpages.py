"""man/: mandoc -Tlint finds nothing, and the pages cannot drift from the code.

carpd-py.conf(5) must document exactly the keys of config.py, table by table, each with its
default, and its examples must be valid configurations; carpd-py(8) and carpctl(8) must
document every option and command of their parsers. mandoc is the Debian package mandoc:
without it the lint is skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from carpd_py import carpctl, daemon
from carpd_py.config import Config, ConfigError, parse_config

from .test_rcd import need

MAN = Path(__file__).resolve().parent.parent / "man"
PAGES = ("carpd-py.8", "carpd-py.conf.5", "carpctl.8")
TOP = "top level"
NOT_KEYS = {"path"}  # Config.path: where the config was read from, not a key of the file
OTHER_METHODS = {
    "upstream": {"port", "command", "relay", "table"}
}  # keys the icmp example cannot have


@pytest.mark.parametrize("page", PAGES)
def test_mandoc_lint_is_clean(page: str) -> None:
    mandoc = need(("mandoc",), "mandoc")
    result = subprocess.run(
        [mandoc, "-Tlint", "-Wwarning", str(MAN / page)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_every_page_is_installed() -> None:
    pyproject = tomllib.loads((MAN.parent / "pyproject.toml").read_text())
    installed = pyproject["tool"]["setuptools"]["data-files"]
    pages = sorted(p.name for p in MAN.iterdir())
    assert pages == sorted(PAGES)
    for page in PAGES:
        assert f"man/{page}" in installed[f"share/man/man{page[-1]}"]


# --- carpd-py.conf(5) against config.py ---


def _table_class(hint: Any) -> type[Any] | None:
    """The dataclass in a field's type: DemoteConfig, SyncConfig | None, tuple[Upstream, ...]."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        found = _table_class(arg)
        if found is not None:
            return found
    return None


def schema() -> dict[str, dict[str, dataclasses.Field[Any]]]:
    """Table name ("top level" for the keys outside any) -> its keys, from the dataclasses."""
    hints = typing.get_type_hints(Config)
    tables: dict[str, dict[str, dataclasses.Field[Any]]] = {TOP: {}}
    for f in dataclasses.fields(Config):
        cls = _table_class(hints[f.name])
        if cls is not None:
            tables[f.name] = {g.name: g for g in dataclasses.fields(cls)}
        elif f.name not in NOT_KEYS:
            tables[TOP][f.name] = f
    return tables


def test_the_keys_left_out_are_not_keys() -> None:
    for name in NOT_KEYS:
        with pytest.raises(ConfigError, match=f"{name}: unknown key"):
            parse_config(f'{name} = "x"\n', "f")


def sections(page: str) -> dict[str, str]:
    """The .Ss sections of a page: table name (from "[demote]", "[[upstream]]") -> text."""
    text = (MAN / page).read_text()
    out: dict[str, str] = {}
    for part in re.split(r"^\.Ss ", text, flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        m = re.fullmatch(r"\[+(\w+)\]+", title.strip())
        out[m[1] if m else title.strip().lower()] = body.split("\n.Sh ")[0]
    return out


def entries(section: str) -> dict[str, str]:
    """`.It Ic KEY ...` entries of a section: key -> its text up to the next item."""
    parts = re.split(r"^\.It Ic (\w+).*$", section, flags=re.M)
    return {key: re.split(r"^\.(?:It|El)\b", body, flags=re.M)[0] for key, body in
            zip(parts[1::2], parts[2::2], strict=True)}  # fmt: skip


def words(mdoc: str) -> str:
    """The words of some mdoc source, without the macros: `.Qq advskew .` -> `advskew .`."""
    macro = re.compile(r"[A-Z][a-z]{1,2}")
    out = []
    for line in mdoc.splitlines():
        tokens = line.split()
        if line.startswith("."):
            tokens = [t for t in tokens[1:] if not macro.fullmatch(t)]
        out.extend(tokens)
    return " ".join(out)


def stated_default(entry: str) -> str | None:
    """What an entry says the default is: the word after "default", or None for "No default"."""
    text = words(entry)
    if re.search(r"\bno default\b", text, re.I):
        return None
    m = re.search(r"\bdefault (\S+)", text, re.I)
    assert m is not None, f"no default stated in {text!r}"
    return m[1].rstrip(".,;:)")


def shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if value == ():
        return "[]"
    return str(value)


PAGE_TABLES = sections("carpd-py.conf.5")


def test_conf_page_has_a_section_for_each_table() -> None:
    assert {"top-level keys" if t == TOP else t for t in schema()} == set(PAGE_TABLES)


@pytest.mark.parametrize("table", list(schema()))
def test_conf_page_documents_each_key_with_its_default(table: str) -> None:
    fields = schema()[table]
    documented = entries(PAGE_TABLES["top-level keys" if table == TOP else table])
    assert list(documented) == list(fields), "the keys, in the order of config.py"
    for key, f in fields.items():
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            assert re.search(r"\brequired\b", words(documented[key]), re.I), key
            continue
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        assert stated_default(documented[key]) == (None if default is None else shown(default)), key


def examples(page: str) -> list[str]:
    text = (MAN / page).read_text().split("\n.Sh EXAMPLES\n")[1].split("\n.Sh ")[0]
    blocks = re.findall(r"^\.Bd -literal.*\n((?:.*\n)*?)\.Ed$", text, flags=re.M)
    assert all("\\" not in b for b in blocks), "keep the examples free of roff escapes"
    return blocks


def test_conf_page_examples_are_valid() -> None:
    full, *more = examples("carpd-py.conf.5")
    config = parse_config(full, "example")
    assert config.sync is not None
    assert config.sync.peer == "10.255.255.3"
    assert [u.name for u in config.upstream] == ["isp"]
    # the full example gives every key, but those of the other upstream methods
    document = tomllib.loads(full)
    tables = schema()
    for table, fields in tables.items():
        if table == TOP:
            given = set(document) - set(tables)
        else:
            value = document[table]
            given = set(value[0] if isinstance(value, list) else value)
        assert given == set(fields) - OTHER_METHODS.get(table, set()), table
    for block in more:
        methods = {u.method for u in parse_config(block, "example").upstream}
        assert methods == {"tcp", "exec", "relayd"}


# --- carpd-py(8) and carpctl(8) against their parsers ---


def flags(parser: argparse.ArgumentParser) -> set[str]:
    """The one-letter options, without argparse's -h."""
    found = {s[1:] for a in parser._actions for s in a.option_strings if re.fullmatch(r"-\w", s)}
    return found - {"h"}


def documented_flags(page: str) -> set[str]:
    return set(re.findall(r"^\.It Fl (\w)\b", (MAN / page).read_text(), flags=re.M))


def test_daemon_page_documents_every_option() -> None:
    assert documented_flags("carpd-py.8") == flags(daemon.build_parser())


def test_carpctl_page_documents_every_option_and_command() -> None:
    parser = carpctl.build_parser()
    assert documented_flags("carpctl.8") == flags(parser)
    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = (MAN / "carpctl.8").read_text()
    assert set(re.findall(r"^\.It Cm (\w+)", text, flags=re.M)) >= set(commands)
    for name, sub in commands.items():
        if any("--json" in a.option_strings for a in sub._actions):
            assert f".It Cm {name} Op Fl Fl json" in text
