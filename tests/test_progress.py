"""Progress (issue 27 item 4): tqdm bars with an ETA on a terminal; when stderr is not a terminal one plain line
per epoch / phase and no carriage return; evaluations report their phases through EvalContext.progress."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssl_bench.engine.progress import Bar, progress_hook
from ssl_bench.evaluation import ProgressTask

ETA = re.compile(r"\[\d\d:\d\d<\d\d:\d\d")  # tqdm's [elapsed<remaining


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_redraws_in_place_with_an_eta():
    screen = Terminal()
    bar = Bar("byol/s0", 10, "step", stream=screen)
    for _ in range(4):
        bar.update(1, loss="1.2")
    bar.note()
    bar.close()
    text = screen.getvalue()
    assert "\r" in text and "byol/s0" in text and "4/10" in text and ETA.search(text)


def test_in_a_log_a_line_per_note_and_none_twice_without_carriage_returns():
    log = io.StringIO()
    bar = Bar("byol/s0", 6, "step", initial=2, stream=log)  # a resume: 2 steps done before
    bar.goto(4, ep="1/2")
    bar.note()
    bar.goto(6, ep="2/2")
    bar.note()
    bar.close()  # the last note already said 6/6
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 2
    assert lines[0].startswith("byol/s0:  67% 4/6 [") and "ep=1/2" in lines[0] and ETA.search(lines[0])
    assert lines[1].startswith("byol/s0: 100% 6/6 [") and "ep=2/2" in lines[1]
    phase = io.StringIO()
    with Bar("features digits/train", 3, "batch", stream=phase) as task:
        task.update(3)
    assert phase.getvalue().count("\n") == 1 and "features digits/train: 100% 3/3" in phase.getvalue()


def test_quiet_progress_is_the_no_op():
    assert type(progress_hook(False)("x", 3)) is ProgressTask
    assert isinstance(progress_hook(True)("x", 3, "it"), Bar)


def test_feature_extraction_and_fine_tuning_report_through_the_hook():
    from ssl_bench.create import create_dataset
    from ssl_bench.evalkit.features import feature_cache
    from ssl_bench.evalkit.finetune import Classifier, InputPrep, train_classifier

    calls: list[tuple[str, int, int]] = []

    class Counting(ProgressTask):
        def __init__(self, desc: str, total: int):
            self.desc, self.total, self.n = desc, total, 0

        def update(self, n: int = 1, **info) -> None:
            self.n += n

        def close(self) -> None:
            calls.append((self.desc, self.total, self.n))

    bundle = create_dataset("digits")
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4)).eval()
    features = feature_cache(encoder, lambda name: bundle, progress=lambda d, t, u="it": Counting(d, t),
                             image_size=8, in_chans=1, mean=bundle.mean, std=bundle.std, device=torch.device("cpu"),
                             batch_size=100)
    features("digits", "test")
    features("digits", "test")  # cached: no second extraction
    n_test = len(bundle.test)
    assert calls == [("features digits/test", -(-n_test // 100), -(-n_test // 100))]
    epochs = []
    prep = InputPrep(8, 1, bundle.mean, bundle.std)
    model = Classifier(encoder, 4, 10, frozen=True)
    train_classifier(model, bundle.test, prep, lrs=[0.1], epochs=3, batch_size=128, seed=0,
                     device=torch.device("cpu"), on_epoch=lambda: epochs.append(1))
    assert len(epochs) == 3


PROGRESS_SUITE = """
name: shown
datasets: [{name: digits, image_size: 8}]
backbones: [{name: resnet18, label: r18, kwargs: {channels: [4, 8, 8, 8], stem_width: 4}}]
methods:
  - random
  - name: byol
    params: {proj_hidden_dim: 32, proj_dim: 16, pred_hidden_dim: 32}
pretrain: {epochs: 2, batch_size: 256, amp: off, log_every: 1}
evaluations: [{name: knn, params: {k: 5}}, {name: linear, params: {num_l2: 3}}]
output: {table: true, report: false}
"""


@pytest.mark.slow
def test_cli_progress_in_a_log_is_a_line_per_epoch_and_phase(tmp_path):
    suite = tmp_path / "shown.yaml"
    suite.write_text(PROGRESS_SUITE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "ssl_bench", "run", str(suite), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=1500)
    assert done.returncode == 0, done.stderr[-2000:]
    err = done.stderr
    assert "\r" not in err and "\r" not in done.stdout  # stderr is a pipe: no bar drawn in place
    lines = err.splitlines()
    train = [x for x in lines if x.startswith("byol/s0:")]
    assert len(train) == 2 and all(ETA.search(x) for x in train)  # one line per epoch, with the ETA
    assert "ep=1/2" in train[0] and train[1].startswith("byol/s0: 100%") and "ep=2/2" in train[1]
    for split in ("train", "val", "test"):  # each run extracts each split once
        assert sum(x.startswith(f"features digits/{split}: 100%") for x in lines) == 2
    assert sum(x.startswith("linear digits: L2 sweep + refit: 100% 4/4") for x in lines) == 2
    suite_lines = [x for x in lines if x.startswith("suite shown:")]
    assert [x.split(" [")[0] for x in suite_lines] == ["suite shown:  50% 1/2", "suite shown: 100% 2/2"]
    assert all(ETA.search(x) for x in suite_lines)
    assert "| Method" in done.stdout
