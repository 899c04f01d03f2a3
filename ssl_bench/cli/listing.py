"""`ssl-bench list [KIND [NAME]]`: every registered plugin with a one-line description, or one plugin's parameters
with their defaults and the values allowed (from its `defaults` and `param_ranges`, as validation reads them)."""
from __future__ import annotations

import inspect
import re
import sys
from typing import Any

import yaml

from ssl_bench.errors import UserError

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\[])")
SUITE_FIELD = {"methods": "methods[].params", "backbones": "backbones[].kwargs", "evaluations": "evaluations[].params",
               "datasets": "datasets[].params"}


def summary(obj: Any) -> str:
    """The first sentence of a plugin's docstring (its module's when the object has none), on one line."""
    doc = inspect.getdoc(obj) if getattr(obj, "__doc__", None) else None
    if not doc:
        doc = (sys.modules.get(getattr(obj, "__module__", "")) or obj).__doc__ or ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    return SENTENCE_END.split(paragraph, maxsplit=1)[0]


def list_all(kind: str | None) -> list[str]:
    from ssl_bench.registry import REGISTRIES

    lines = []
    for k, reg in REGISTRIES.items():
        if kind and k != kind:
            continue
        lines.append(f"{k}:")
        lines += [f"  {name:<18} {summary(obj)}" for name, obj in reg.items()]
        if k == "backbones":
            lines.append("  (and any timm model name, e.g. resnet18, resnet50, vit_small_patch16_224)")
    if not kind:
        lines.append("(ssl-bench list KIND NAME: one plugin's parameters, defaults and allowed values)")
    return lines


def plugin_params(kind: str, name: str, obj: Any) -> dict[str, Any]:
    """The parameters a suite may set for this plugin, with their defaults."""
    if kind == "loggers":
        return {}  # output.loggers names them; they take no parameters
    if kind == "datasets":
        from ssl_bench.data.datasets import dataset_params

        return dataset_params(name)
    if isinstance(getattr(obj, "defaults", None), dict):
        return dict(obj.defaults)
    target = obj.__init__ if inspect.isclass(obj) else obj
    return {p.name: p.default for p in inspect.signature(target).parameters.values()
            if p.default is not p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def yaml_value(value: Any) -> str:
    """A default as the suite's YAML would spell it (true, null, [0.08, 1.0])."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text[:-4].strip() if text.endswith("\n...") else text


def allowed(default: Any, check: Any) -> str:
    """What validation accepts: the declared check's own wording, else the default's type (like_default)."""
    if isinstance(default, bool):
        kind = "true or false"
    elif isinstance(default, int):
        kind = "an integer"
    elif isinstance(default, float):
        kind = "a number"
    elif isinstance(default, str):
        kind = "a string"
    elif isinstance(default, (list, tuple)):
        kind = "a list"
    elif isinstance(default, dict):
        kind = "a mapping"
    else:
        kind = "any value"
    if check is None or isinstance(default, bool):
        return kind
    if isinstance(default, (list, tuple)) and hasattr(check, "lo"):
        return f"a list, each {check.allowed('a number')}"
    return check.allowed("an integer" if kind == "an integer" else "a finite number")  # Range.check's words


def describe(kind: str, name: str) -> list[str]:
    from ssl_bench.registry import REGISTRIES

    obj = REGISTRIES[kind].get(name, where=f"list {kind}")
    lines = [f"{name} ({kind[:-1]}, {getattr(obj, '__module__', '?')}): {summary(obj)}"]
    params = plugin_params(kind, name, obj)
    ranges = getattr(obj, "param_ranges", None) or {}
    lines.append(f"parameters ({SUITE_FIELD.get(kind, 'keyword arguments')}):" if params else "parameters: none")
    if kind == "loggers" and getattr(obj, "requires", ()):
        lines.append(f"needs: {', '.join(obj.requires)} (pip install \"ssl-bench[{obj.extra}]\")")
    width = max((len(p) for p in params), default=0)
    for key, default in params.items():
        lines.append(f"  {key:<{width}}  default {yaml_value(default):<14} allowed: {allowed(default, ranges.get(key))}")
    optim = getattr(obj, "optim", None)
    if kind == "methods" and isinstance(optim, dict) and optim:
        lines.append("optim defaults (methods[].optim): " + ", ".join(f"{k} {yaml_value(x)}" for k, x in optim.items()))
    presets = getattr(obj, "presets", None)
    if kind == "methods" and presets:
        from ssl_bench.presets import PAPER

        lines.append(f"presets (methods[].preset): {', '.join([PAPER, *presets])}")
    return lines


def run_list(kind: str | None, name: str | None) -> int:
    from ssl_bench.registry import REGISTRIES

    if name and not kind:
        raise UserError(f"list: a name ({name!r}) needs a kind first; allowed: ssl-bench list KIND NAME, "
                        f"KIND one of {', '.join(REGISTRIES)}")
    print("\n".join(describe(kind, name) if name else list_all(kind)))
    return 0
