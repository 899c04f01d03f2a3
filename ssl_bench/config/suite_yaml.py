"""Reading a suite file: a safe YAML loader with YAML 1.2 floats and booleans, no duplicate keys and bounded size.

A suite is a few hundred nodes; the caps below are far above that and far below what hurts: a
"billion laughs" file (aliases of aliases, or one long string aliased many times) is refused while it is still
a small node graph.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from ssl_bench.errors import UserError

MAX_FILE_BYTES = 1 << 20  # 1 MiB
MAX_NODES = 100_000  # YAML nodes after expanding every alias
MAX_CHARS = 4 << 20  # characters of all scalars after expanding every alias (the file itself is at most 1 MiB)


class _SuiteLoader(yaml.SafeLoader):
    """safe_load with YAML 1.2 floats and booleans (other scalars as PyYAML's YAML 1.1 rules): `1e-6` is a
    float (not a string), `off`/`no` are strings (not bools).
    Duplicate keys are errors (YAML says keys are unique; PyYAML silently keeps the last)."""

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _check_expanded_size(node)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, str] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden on purpose
                    continue
                key = self.construct_object(key_node, deep=True)
                mark = key_node.start_mark
                where = f"line {mark.line + 1}, column {mark.column + 1}"
                try:
                    first = seen.setdefault(key, where)
                except TypeError:  # unhashable key: the base class reports it
                    continue
                if first is not where:
                    raise ConstructorError(None, None, f"duplicate key {key!r} (first at {first}); "
                                           "allowed: each key once per mapping", mark)
        return super().construct_mapping(node, deep)


def _check_expanded_size(root: yaml.Node) -> None:
    """Count the nodes and the characters of the document once every alias is expanded (memoized: linear in the
    graph), so a value that would only blow up when it is copied or printed is refused here, naming its field."""
    sizes: dict[int, tuple[int, int]] = {}
    active: set[int] = set()

    def size(node: yaml.Node, field: str) -> tuple[int, int]:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConstructorError(None, None, "an alias refers to a node that contains it; allowed: no "
                                   "recursive aliases", node.start_mark)
        active.add(key)
        nodes, chars = 1, len(node.value) if isinstance(node, yaml.ScalarNode) else 0
        children = list(enumerate(node.value)) if isinstance(node, yaml.SequenceNode) else \
            [(k.value if isinstance(k, yaml.ScalarNode) else "?", (k, v)) for k, v in node.value] \
            if isinstance(node, yaml.MappingNode) else []
        for name, child in children:
            where = f"{field}[{name}]" if isinstance(name, int) else f"{field}.{name}" if field else str(name)
            for part in (child if isinstance(child, tuple) else (child,)):
                n, c = size(part, where)
                nodes, chars = nodes + n, chars + c
        active.discard(key)
        sizes[key] = min(nodes, MAX_NODES + 1), min(chars, MAX_CHARS + 1)  # capped: the sums stay small
        if nodes > MAX_NODES:
            raise ConstructorError(None, None, f"aliases expand to more than {MAX_NODES} YAML nodes; allowed: "
                                   f"at most {MAX_NODES} (is it an alias bomb?)", node.start_mark)
        if chars > MAX_CHARS:
            raise UserError(f"{field or 'suite'}: expands to more than {MAX_CHARS} characters once its aliases are "
                            f"expanded; allowed: at most {MAX_CHARS} (is it an alias bomb?)")
        return sizes[key]

    size(root, "")


_SuiteLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _ch in "tTfF":
    _SuiteLoader.yaml_implicit_resolvers.setdefault(_ch, []).insert(
        0, ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")))


_SuiteLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$"
               r"|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def read_suite_yaml(path: str | os.PathLike) -> dict | None:
    """The suite file as a plain mapping (YAML 1.2 floats and booleans), before validation; for tools that edit a suite."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: suite file not found; allowed: a path to an existing .yaml file")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path}: {size} bytes; allowed: a suite file of at most {MAX_FILE_BYTES} bytes (1 MiB)")
    try:
        raw = yaml.load(p.read_bytes().decode("utf-8"), Loader=_SuiteLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; allowed: a UTF-8 YAML suite") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply; allowed: a suite of ordinary depth") from None
    if raw is not None and not isinstance(raw, dict):
        raise UserError(f"{path}: top level is {type(raw).__name__}; allowed: a mapping of suite fields")
    return raw
