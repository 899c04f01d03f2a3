"""Command-line overrides of a suite: `ssl-bench run suite.yaml pretrain.epochs=5 methods[0].params.tau_base=0.996`.

Each override is `PATH=VALUE`: PATH is dotted keys with list indices (`methods[0].optim.base_lr`), VALUE is read
as YAML by the suite's own loader (YAML 1.2 floats and booleans: `1e-3` is a number, `off` a string; a flow
list or mapping such as `[0, 1]` works too). Overrides edit the suite's raw mapping before validation, so an
override is checked exactly as the same value written in the file, and an error names its path. Missing
mappings on the way are created (`pretrain.optim.base_lr=0.3` in a suite without `pretrain:`), and a list entry
given as a bare name (`- byol`) becomes `{name: byol}` when a key inside it is set.
"""
from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from ssl_bench.config.suite_yaml import _SuiteLoader
from ssl_bench.errors import UserError

KEY = r"[A-Za-z_][A-Za-z0-9_]*"
PATH = re.compile(rf"{KEY}(?:\[\d+\])*(?:\.{KEY}(?:\[\d+\])*)*")
TOKEN = re.compile(rf"({KEY})|\[(\d+)\]")
EXAMPLE = "PATH=VALUE with a dotted PATH and list indices, e.g. pretrain.epochs=5 or methods[0].params.tau_base=0.996"


def split_assignment(text: str, what: str = "override") -> tuple[list[str | int], str, str]:
    """(path tokens, path text, value text) of `PATH=VALUE`; a bad PATH is one UserError naming it."""
    path, eq, value = text.partition("=")
    path = path.strip()
    if not eq or not PATH.fullmatch(path):
        raise UserError(f"{what} {text!r}: bad path; allowed: {EXAMPLE}")
    tokens: list[str | int] = [int(i) if i else k for k, i in TOKEN.findall(path)]
    return tokens, path, value


def parse_value(text: str, path: str) -> Any:
    """VALUE read as the suite file reads a value (config.suite_yaml's loader)."""
    try:
        return yaml.load(text, Loader=_SuiteLoader) if text.strip() else None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: bad value {text!r} (not YAML: {getattr(exc, 'problem', exc)}); allowed: a YAML "
                        "value such as 5, 0.996, true, a name, or [0, 1]") from None


def where(tokens: list[str | int]) -> str:
    """The tokens as a path again: methods[0].params.tau_base."""
    out = ""
    for t in tokens:
        out += f"[{t}]" if isinstance(t, int) else (f".{t}" if out else t)
    return out


def set_path(raw: dict, tokens: list[str | int], value: Any) -> None:
    """raw[...tokens] = value, creating mappings on the way; UserError naming the path where it cannot."""
    node: Any = raw
    for i, tok in enumerate(tokens):
        last, here = i == len(tokens) - 1, where(tokens[:i + 1])
        if isinstance(tok, int):
            if not isinstance(node, list):
                raise UserError(f"{where(tokens[:i]) or 'suite'}: is not a list; {here} cannot be set; allowed: an "
                                "index only after a list field (methods, backbones, datasets, evaluations, seeds)")
            if tok >= len(node):
                raise UserError(f"{here}: no such entry (the list has {len(node)}); allowed: an index 0.."
                                f"{len(node) - 1}")
            if last:
                node[tok] = value
                return
            if isinstance(node[tok], str) and isinstance(tokens[i + 1], str):
                node[tok] = {"name": node[tok]}  # `- byol` -> {name: byol}, so that a key can be set inside
            node = node[tok]
            continue
        if not isinstance(node, dict):
            shown = "null" if node is None else repr(node)
            raise UserError(f"{where(tokens[:i])}: is {shown}, not a mapping; {here} cannot be set inside it; "
                            f"allowed: set {where(tokens[:i])} itself")
        if last:
            node[tok] = value
            return
        if node.get(tok) is None:
            node[tok] = [] if isinstance(tokens[i + 1], int) else {}
        node = node[tok]


def apply_overrides(raw: dict | None, overrides: list[str]) -> dict:
    """A copy of the raw suite mapping with every `PATH=VALUE` applied in order (a later one wins)."""
    out = copy.deepcopy(raw) if raw is not None else {}
    for text in overrides:
        tokens, path, value = split_assignment(text)
        set_path(out, tokens, parse_value(value, path))
    return out


class _SuiteDumper(yaml.SafeDumper):
    """Writes what _SuiteLoader reads back as the same values (its implicit resolvers decide the quoting:
    the string '1e-3' is quoted, the string off is not)."""


_SuiteDumper.yaml_implicit_resolvers = _SuiteLoader.yaml_implicit_resolvers


def dump_suite(raw: dict, header: list[str]) -> str:
    """The effective suite as YAML that `load_suite` reads back to the same suite, after `# ` header lines."""
    body = yaml.dump(raw, Dumper=_SuiteDumper, sort_keys=False, default_flow_style=None, allow_unicode=True)
    return "".join(f"# {line}\n" for line in header) + body


def recorded_text(suite: Any) -> str | None:
    """What OUT/suite.yaml records: the suite file as it is, or, when the command line changed it (overrides,
    sweeps), the effective suite with the command in a header. None when there is neither."""
    from pathlib import Path

    if getattr(suite, "overrides", None):
        header = [f"the effective suite: {suite.path} with these command-line changes applied:",
                  " ".join(suite.overrides), "(ssl-bench run / validate read this file as any suite)"]
        return dump_suite(suite.effective, header)
    src = Path(suite.path)
    return src.read_bytes().decode("utf-8") if src.is_file() else None


def changes_in(text: str) -> str:
    """The command-line changes a recorded suite.yaml names in its header ("" for a suite file as it is)."""
    lines = text.splitlines()
    return lines[1][2:] if len(lines) > 1 and lines[0].startswith("# the effective suite: ") else ""


def resume_note(old_text: str, new_text: str) -> str | None:
    """One line when --resume continues a folder whose recorded suite differs from this one, else None."""
    if old_text == new_text:
        return None
    old, new = changes_in(old_text) or "none", changes_in(new_text) or "none"
    what = f"command-line changes there: {old}; here: {new}" if old != new else "the suite file changed"
    return (f"note: this suite differs from the one recorded in suite.yaml ({what}); runs whose settings changed "
            "get new run ids, the others are reused")
