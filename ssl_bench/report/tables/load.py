"""Read OUT/results.jsonl files of one or more result folders into one pandas frame."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from ssl_bench.errors import UserError
from ssl_bench.jsonl import read_jsonl
from ssl_bench.run.ledger import RESULTS_FILE, UNREADABLE_FILE, ResultsStore
from ssl_bench.report.tables.configs import separate_configurations, separate_datasets
from ssl_bench.report.tables.rows import screen, undeclared_protocols
REQUIRED = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "value", "seed", "status")
OPTIONAL = ("suite", "run_id", "label_fraction", "epochs", "error", "eval_key", "config_hash")
# A record is one measurement; these say which one, so a result folder given twice counts once.
IDENTITY = ("run_id", "eval_key", "protocol", "eval_dataset", "metric", "label_fraction")


def read_records(path: Path, found: tuple[list, list] | None = None) -> list[dict[str, Any]]:
    """Records of one results.jsonl (or `found`: its rows and unreadable lines, already read). Unreadable lines
    (a torn write, a hand edit) and objects that are not result records are skipped with one warning;
    `ssl-bench run --resume` moves them to UNREADABLE_FILE."""
    rows, bad = read_jsonl(path) if found is None else found
    records = [r for r in rows if all(k in r for k in REQUIRED)]
    if bad or len(records) < len(rows):
        where = ", ".join(str(n) for n, _ in bad[:5]) or "-"
        warnings.warn(f"{path}: skipped {len(bad)} unreadable line(s) (line {where}) and {len(rows) - len(records)} "
                      f"object(s) that are not result records; `ssl-bench run --resume` moves unreadable lines to "
                      f"{UNREADABLE_FILE}", stacklevel=3)
    records, invalid = screen(records)
    if invalid:
        warnings.warn(f"{path}: {len(invalid)} row(s) are not valid results; left out of every mean and shown as "
                      f"invalid: {'; '.join(invalid[:5])}{'; ...' if len(invalid) > 5 else ''}", stacklevel=3)
    return records


class NoResultsYet(UserError):
    """The folders exist but hold no result row yet (a suite before its first evaluation finished): `table` and
    `report` then show the runs still pending (ssl_bench.report.pending) instead of refusing."""


def load_results(dirs: list[str]) -> pd.DataFrame:
    """All records of DIR/results.jsonl for each DIR, one row each, plus `out_dir`.

    Failure records that carry no metric (a run that failed before evaluating) are spread over the
    metrics the same protocol reports elsewhere, so their cells show "failed" rather than vanishing.
    """
    if not dirs:
        raise UserError("result folders: none given; allowed: one or more folders holding results.jsonl")
    records: list[dict[str, Any]] = []
    out_dirs: list[str] = []
    for d in dirs:
        folder = Path(d)
        if not folder.is_dir():
            raise UserError(f"result folder {d}: not found; allowed: a folder written by `ssl-bench run`")
        path = folder / RESULTS_FILE
        found = ResultsStore(folder).read_view()  # the view, rebuilt first from the batch files when stale
        if not path.is_file() and not any(found):
            raise (NoResultsYet if (folder / "matrix.json").is_file() else UserError)(f"{path}: not found; allowed: a result folder written by `ssl-bench run`")
        mine = read_records(path, found)
        records += mine
        out_dirs += [str(folder)] * len(mine)  # a column, not a copy of every record
    if not records:
        raise NoResultsYet(f"results.jsonl in {', '.join(dirs)}: no records yet; allowed: folders with finished runs")
    applies = [r.get("status") != "skipped" for r in records]  # a protocol that does not apply to the run
    records = [r for r, keep in zip(records, applies) if keep]
    out_dirs = [d for d, keep in zip(out_dirs, applies) if keep]
    if not records:
        raise NoResultsYet(f"results.jsonl in {', '.join(dirs)}: no records yet; allowed: folders with finished runs")
    unknown = undeclared_protocols(records)
    if unknown:
        warnings.warn(f"protocol(s) {unknown} are declared by no installed evaluation (is a plugin missing?); their "
                      "rows appear in no preset table (linear, semi, transfer), only under other evaluations",
                      stacklevel=3)
    df = pd.DataFrame.from_records(records).assign(out_dir=out_dirs)
    for col in OPTIONAL:
        if col not in df:
            df[col] = None
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    df["label_fraction"] = pd.to_numeric(df["label_fraction"], errors="coerce").astype(float)
    df["status"] = df["status"].fillna("failed").astype(object)
    df = _spread_unattributed_failures(df)
    return _mark_released(separate_configurations(separate_datasets(_drop_duplicates(df)))).reset_index(drop=True)


RELEASED_MARK = "◆"
RELEASED_NOTE = (f"{RELEASED_MARK} released weights (method `pretrained`) evaluated with our protocol; published "
                 "rows beside them are the release's own numbers, measured with the release's protocol")


def _mark_released(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the `pretrained` method keep their label with a mark, so no table reads them as trained here."""
    if "method_name" not in df or not (df["method_name"] == "pretrained").any():
        return df
    df = df.copy()
    released = df["method_name"] == "pretrained"
    df.loc[released, "method"] = df.loc[released, "method"].astype(str) + f" {RELEASED_MARK}"
    df.attrs["notes"] = [RELEASED_NOTE]
    return df


def _drop_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    keys = [k for k in IDENTITY if k in df]
    has_id = df["run_id"].notna()
    dup = df[has_id].duplicated(subset=keys, keep="last")
    if dup.any():
        warnings.warn(f"{int(dup.sum())} record(s) appear twice (same run and evaluation, e.g. a folder given "
                      "twice); counted once", stacklevel=3)
        df = df.drop(index=df[has_id].index[dup.to_numpy()])
    return df


def _spread_unattributed_failures(df: pd.DataFrame) -> pd.DataFrame:
    """A failed record without a metric stands for every metric (and label fraction) of its protocol."""
    loose = df["metric"].isna() & (df["status"] != "ok")
    if not loose.any():
        return df
    known = df[~loose]
    out = [df[~loose]]
    for idx, rec in df[loose].iterrows():
        same = known[(known["protocol"] == rec["protocol"]) & (known["eval_dataset"] == rec["eval_dataset"])]
        combos = same[["metric", "label_fraction"]].drop_duplicates()
        if pd.notna(rec["label_fraction"]):
            combos = combos[combos["label_fraction"] == rec["label_fraction"]]
        if combos.empty:
            combos = pd.DataFrame({"metric": ["top1"], "label_fraction": [rec["label_fraction"]]})
        rows = pd.DataFrame([rec] * len(combos)).reset_index(drop=True)
        rows["metric"] = combos["metric"].to_numpy()
        rows["label_fraction"] = combos["label_fraction"].to_numpy()
        out.append(rows)
    return pd.concat(out, ignore_index=True)
