
import pytest
import torch

# Tiny test models run fastest on one thread (and the CI machine may be shared).
torch.set_num_threads(1)

TINY_SUITE = """
name: tiny
seeds: [0]
datasets: [{{name: digits, image_size: 8}}]
backbones: [{{name: resnet18, label: r18-tiny, kwargs: {{channels: [4, 8, 8, 8], stem_width: 4}}}}]
methods:
  - random
  - name: byol
    params: {{proj_hidden_dim: 32, proj_dim: 16, pred_hidden_dim: 32}}
    optim: {{base_lr: 1.0, warmup_epochs: 1}}
pretrain: {{epochs: {epochs}, batch_size: 64, amp: off, log_every: 5}}
evaluations:
  - {{name: knn, params: {{k: 10}}}}
  - {{name: linear, params: {{num_l2: 5}}}}
output: {{table: true, report: false}}
"""


@pytest.fixture
def tiny_suite(tmp_path):
    def make(epochs: int = 2) -> str:
        path = tmp_path / "tiny.yaml"
        path.write_text(TINY_SUITE.format(epochs=epochs))
        return str(path)

    return make


@pytest.fixture(scope="session")
def finished_tiny(tmp_path_factory):
    """(suite file, output folder) of a finished 2-epoch tiny suite (random and BYOL, kNN and linear), shared by
    the ledger and output-folder tests; they copy the folder before changing it."""
    from ssl_bench.cli.main import main

    base = tmp_path_factory.mktemp("finished")
    suite = base / "tiny.yaml"
    suite.write_text(TINY_SUITE.format(epochs=2).replace("table: true", "table: false"))
    out = base / "out"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    return suite, out


def results_rows(out) -> list[dict]:
    """Every row of OUT/results.jsonl, parsed strictly (no NaN/Infinity tokens)."""
    import json
    from pathlib import Path

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return [json.loads(line, parse_constant=refuse) for line in (Path(out) / "results.jsonl").read_text().splitlines()]


def metrics_rows(run_dir) -> list[dict]:
    """Every epoch row of RUN_DIR/metrics.jsonl."""
    import json
    from pathlib import Path

    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def row_key(r: dict) -> tuple:
    """What one row measures: (run, evaluation config, protocol, dataset, metric)."""
    return r["run_id"], r["eval_key"], r["protocol"], r["eval_dataset"], r["metric"]


def batch_files(out) -> list:
    """Every batch file of OUT (runs/<run>/results/<evaluation>.json), in path order."""
    from pathlib import Path

    return sorted(Path(out).glob("runs/*/results/*.json"))


def edit_batch(path, change) -> None:
    """Rewrite a batch file with `change(data)` applied to its parsed JSON (a tampered or damaged batch)."""
    import json
    from pathlib import Path

    data = json.loads(Path(path).read_text())
    change(data)
    Path(path).write_text(json.dumps(data))
