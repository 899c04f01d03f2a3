"""Whether a published row's evaluation recipe is ours: the fields it states, compared one by one.

Both sides are in the protocol's terms (`Protocol.recipe_fields`, ssl_bench.evalkit.recipes): ours from the
records' `recipe`, theirs from the published row's `recipe` column. A field the source leaves unstated (`?`) is
not compared and is named under the table; a row that states no recipe at all is never subtracted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ssl_bench.evaluation import UNSTATED, canonical_recipe


@dataclass(frozen=True)
class RecipeCheck:
    matches: bool
    differing: tuple[str, ...] = ()  # "epochs (ours 20, reported 80)", ...
    unstated: tuple[str, ...] = ()  # fields the source does not state (not compared)
    why: str = ""  # when there is nothing to compare

    def text(self) -> str:
        """One clause for the table's notes."""
        if self.why:
            return self.why
        if not self.matches:
            return "its evaluation recipe differs from ours in " + ", ".join(self.differing)
        if self.unstated:
            return "recipe as ours; not stated by the source, so not compared: " + ", ".join(self.unstated)
        return "recipe as ours"


def compare(ours: Any, theirs: Any) -> RecipeCheck:
    """Does our recipe (a record's `recipe`) meet the published one on every field the source states?"""
    if not isinstance(theirs, dict):
        return RecipeCheck(False, why="the source's evaluation recipe is not stated in ssl-bench's terms")
    if not isinstance(ours, dict):
        return RecipeCheck(False, why="our rows record no evaluation recipe")
    mine, pub = canonical_recipe(ours), canonical_recipe(theirs)
    differing, unstated = [], []
    for key in sorted(set(mine) | set(pub)):
        if pub.get(key) == UNSTATED:
            unstated.append(key)
        elif key not in pub or key not in mine or not _equal(mine[key], pub[key]):
            differing.append(f"{key} (ours {_show(mine.get(key))}, reported {_show(pub.get(key))})")
    return RecipeCheck(not differing, tuple(differing), tuple(unstated))


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    return type(a) is type(b) and a == b


def _show(v: Any) -> str:
    if v is None:
        return "not stated"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)
