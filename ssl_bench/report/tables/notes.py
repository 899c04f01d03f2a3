"""Table footnotes about how the shown rows were trained, when it is not the usual epochs."""
from __future__ import annotations

import pandas as pd

WHAT = {"images_seen": "images seen", "wall_time_s": "pretraining wall time"}


def table_notes(rows: pd.DataFrame) -> list[str]:
    """Footnotes saying which budget the shown rows were trained to, when it is not epochs."""
    if "budget_kind" not in rows:
        return []
    is_budgeted = rows["budget_kind"].isin(list(WHAT))
    budgeted = rows[is_budgeted]
    epochs = pd.to_numeric(rows["epochs"], errors="coerce") if "epochs" in rows else 0
    trained = rows[is_budgeted | (epochs > 0)]  # untrained baselines (random: 0 epochs) match any budget
    notes = []
    groups = budgeted.groupby(["budget_kind", "budget_value"], sort=True)["method"]
    for (kind, value), methods in groups:
        amount = f"{value:,.0f}" if kind == "images_seen" else f"{value:,g} s"
        how = " (rounded up to whole batches)" if kind == "images_seen" else \
            " (steps fixed from a step time measured before training; machine-dependent)"
        names = list(dict.fromkeys(methods.astype(str)))
        whose = "" if len(groups) == 1 and len(budgeted) == len(trained) else f": {', '.join(names)}"
        notes.append(f"Pretrained to equal {WHAT[kind]}, {amount} per method{how}{whose}.")
    return notes


HARDWARE = ("precision", "device", "compute_device", "threads")  # recorded in every row (run/recorder.hardware)


def hardware_notes(rows: pd.DataFrame) -> list[str]:
    """One footnote naming the precision, device and CPU thread count the shown rows ran with (several
    combinations: each with its methods), or saying they were not recorded (rows written before 2026-12)."""
    if rows.empty:
        return []
    if "precision" not in rows or rows["precision"].isna().all():
        return ["Precision, device and threads: not recorded in these rows (written by an older ssl-bench)."]
    have = rows.assign(**{f: rows[f].astype(object).where(rows[f].notna(), "?").astype(str) if f in rows else "?"
                          for f in HARDWARE})
    groups = have.groupby(list(HARDWARE), sort=True)["method"]
    parts = []
    for (precision, device, name, threads), methods in groups:
        where = device if name in ("?", "nan", "None", device) else f"{device} ({name})"
        threads = str(threads).removesuffix(".0")
        text = f"{precision} on {where}, {threads} thread{'' if threads == '1' else 's'}"
        if precision == "?":  # rows written by an older ssl-bench beside newer ones
            text = "unrecorded precision, device and threads (older rows)"
        if len(groups) > 1:
            text += f": {', '.join(dict.fromkeys(methods.astype(str)))}"
        parts.append(text)
    return ["Ran in " + "; ".join(parts) + "."]
