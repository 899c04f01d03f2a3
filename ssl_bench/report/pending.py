"""What `ssl-bench table` and `ssl-bench report` show for a folder whose suite has started but has no result
row yet: the runs of its matrix and their state (as `ssl-bench status` prints them), not a refusal."""
from __future__ import annotations

import html
from pathlib import Path


def pending_text(dirs: list[str]) -> str | None:
    """Each started folder's runs with their state; None when a folder was never started by `ssl-bench run`
    (no matrix.json): then the caller's refusal stands."""
    from ssl_bench.run.status import folder_status, render_status

    parts = []
    for d in dirs:
        if not (Path(d) / "matrix.json").is_file():
            return None
        states = folder_status(d)
        parts.append(f"{d}: no results yet; {sum(s['state'] != 'done' for s in states)} of {len(states)} runs "
                     f"still to finish (tables appear as evaluations land):\n{render_status(states)}")
    return "\n\n".join(parts)


def pending_page(out_dir: str | Path, text: str) -> str:
    """A self-contained page holding the pending runs' status."""
    title = f"ssl-bench report: {html.escape(Path(out_dir).name)} (no results yet)"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n<h2>Runs</h2>\n"
            f"<pre>{html.escape(text)}</pre>\n</body>\n</html>\n")
