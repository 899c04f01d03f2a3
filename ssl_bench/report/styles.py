"""One look per method across every plot of a report: colour, marker and line style, and the draw order.

A method keeps its colour from plot to plot (the palette is built once from the folder's records, in the tables'
method order). The untrained `random` row is dashed with hollow markers and drawn on top: its semi-supervised
line equals `supervised`'s by design (both fine-tune a fresh initialisation) and was hidden under it.
"""
from __future__ import annotations

from typing import Any, Iterable

COLORS = [f"C{i}" for i in range(10)]
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
ON_TOP = ("random",)  # drawn last, dashed and hollow: a baseline that may coincide with another line


def _base(name: str) -> str:
    return name.split(" / ")[0]  # series names are "method[ / backbone][ / dataset]" (run_logs.series_name)


def series_styles(names: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Per series name: colour, marker, linestyle, zorder and marker face, in a stable order of `names`."""
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(dict.fromkeys(str(n) for n in names)):
        top = _base(name) in ON_TOP
        out[name] = {"color": COLORS[i % len(COLORS)], "marker": MARKERS[i % len(MARKERS)],
                     "linestyle": "--" if top else "-", "zorder": 4 if top else 2,
                     "markerfacecolor": "none" if top else COLORS[i % len(COLORS)]}
    return out


def style_of(styles: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """The series' look; a series the palette has not seen gets the next colour (never a shared one)."""
    if name not in styles:
        styles.update({name: series_styles([*styles, name])[name]})
    return styles[name]


def draw_order(names: Iterable[str]) -> list[str]:
    """Names with the ON_TOP baselines moved last (drawn over the others), the rest in their order."""
    names = list(dict.fromkeys(names))
    return [n for n in names if _base(n) not in ON_TOP] + [n for n in names if _base(n) in ON_TOP]
