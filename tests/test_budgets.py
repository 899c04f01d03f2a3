"""Issue #15 item 5: pretraining budgets (`pretrain.budget` / `methods[i].budget`: epochs, images seen or
wall-time seconds). Tiny data: digits at 8 px (1294 train images, 20 steps of 64 per epoch), a narrow resnet18."""
import hashlib
import json
import math
import sys
from pathlib import Path

import pytest

from ssl_bench.engine.plan import PLAN_FILE, plan
from ssl_bench.cli.main import main
from ssl_bench.engine import checkpoint
from ssl_bench.engine.schedules import scaled_lr, warmup_cosine
from ssl_bench.registry import METHODS
from ssl_bench.config.run_spec import expand
from ssl_bench.config.suite import parse_suite, read_suite_yaml

from conftest import metrics_rows as metrics, results_rows as rows

pytestmark = pytest.mark.slow  # every test here trains or runs a suite (quick loop: -m "not slow")

SUITE = """
name: budgets
seeds: [0]
datasets: [{{name: digits, image_size: 8}}]
backbones: [{{name: resnet18, label: r18-tiny, kwargs: {{channels: [4, 8, 8, 8], stem_width: 4}}}}]
methods: {methods}
pretrain: {{batch_size: 64, amp: off, log_every: 5{pretrain}}}
evaluations: [{{name: knn, params: {{k: 10}}}}]
output: {{table: false, report: false}}
"""
BYOL = ("{name: byol, params: {proj_hidden_dim: 32, proj_dim: 16, pred_hidden_dim: 32}, "
        "optim: {base_lr: 1.0, warmup_epochs: 1}}")
SIMCLR = "{name: simclr, params: {proj_hidden_dim: 32, proj_dim: 16}, optim: {warmup_epochs: 1}}"
IMAGES = 1500  # ceil(1500 / 64) = 24 steps: epoch 0 whole (20 steps), epoch 1 partial (4 steps)
STEPS, PER_EPOCH = 24, 20


def write(path: Path, methods: str, pretrain: str) -> str:
    path.write_text(SUITE.format(methods=methods, pretrain=pretrain))
    return str(path)


@pytest.fixture(scope="module")
def images_seen(tmp_path_factory):
    """random, BYOL and SimCLR to 1500 images seen: straight, and killed before the partial epoch's checkpoint
    then resumed."""
    root = tmp_path_factory.mktemp("budgets")
    suite = write(root / "s.yaml", f"[random, {BYOL}, {SIMCLR}]", f", budget: {{images_seen: {IMAGES}}}")
    straight, killed = root / "straight", root / "killed"
    assert main(["run", suite, "--out", str(straight), "--quiet"]) == 0
    mp, real, seen = pytest.MonkeyPatch(), checkpoint.save_atomic, {}

    def kill_at_partial_epoch(obj, path):  # its metrics row is logged, its checkpoint not written
        if isinstance(obj, dict) and obj.get("epoch") == 2 and "killed" not in seen:
            seen["killed"] = Path(path).parent
            raise KeyboardInterrupt
        return real(obj, path)

    mp.setattr(checkpoint, "save_atomic", kill_at_partial_epoch)
    try:
        assert main(["run", suite, "--out", str(killed), "--quiet"]) == 130
    finally:
        mp.undo()
    assert checkpoint.load(seen["killed"] / "checkpoint.pt")["epoch"] == 1
    assert main(["run", suite, "--out", str(killed), "--quiet", "--resume"]) == 0
    return {"straight": straight, "killed": killed, "killed_run": seen["killed"]}


def run_dir(out: Path, method: str) -> Path:
    return next((out / "runs").glob(f"{method}-*"))


def test_images_seen_stops_at_ceil_n_over_batch_steps_inside_an_epoch(images_seen):
    for method in ("byol", "simclr"):
        log = metrics(run_dir(images_seen["straight"], method))
        assert [m["epoch"] for m in log] == [0, 1]
        assert [m["step"] for m in log] == [PER_EPOCH, STEPS]
        assert "partial" not in log[0] and log[1]["partial"] is True and log[1]["epoch_steps"] == STEPS - PER_EPOCH
        state = checkpoint.load(run_dir(images_seen["straight"], method) / "checkpoint.pt")
        assert state["step"] == STEPS and state["total"] == STEPS


def test_two_methods_with_one_images_seen_budget_see_the_same_images(images_seen):
    recs = {r["method"]: r for r in rows(images_seen["straight"])}
    for method in ("byol", "simclr"):
        r = recs[method]
        assert r["compute_steps"] == STEPS and r["compute_images_seen"] == STEPS * 64 >= IMAGES
        assert (r["budget_kind"], r["budget_value"], r["budget_steps"]) == ("images_seen", IMAGES, STEPS)
        assert r["epochs"] == r["epochs_started"] == 2  # the partial epoch counts as started
    assert (recs["random"]["budget_kind"], recs["random"]["budget_value"], recs["random"]["epochs"]) == \
        ("epochs", 0, 0)  # an untrained baseline matches any budget


def test_lr_and_tau_schedules_end_at_the_budgets_last_step(images_seen):
    last = metrics(run_dir(images_seen["straight"], "byol"))[-1]
    # hand computation: peak = base_lr * batch / 256, warmup = 1 epoch of 20 steps, cosine over 24 steps
    expected_lr = warmup_cosine(STEPS - 1, STEPS, PER_EPOCH, scaled_lr(1.0, 64))
    assert last["lr"] == pytest.approx(expected_lr, rel=1e-12)
    # the cosine is at 3/4 of its 4 steps (15 % of the peak), where pretrain.epochs' default 100 would be at its peak
    assert last["lr"] < 0.2 * scaled_lr(1.0, 64) and warmup_cosine(STEPS, STEPS, PER_EPOCH, 1.0) == 0.0
    byol = METHODS.get("byol")
    tau_base = byol.defaults["tau_base"]
    expected_tau = 1 - (1 - tau_base) * (math.cos(math.pi * (STEPS - 1) / STEPS) + 1) / 2  # BYOL's tau schedule
    assert last["tau"] == pytest.approx(expected_tau, rel=1e-9)


def test_kill_in_the_partial_epoch_then_resume_is_bit_identical(images_seen):
    a = checkpoint.load(run_dir(images_seen["straight"], "byol") / "final.pt")["model"]
    b = checkpoint.load(images_seen["killed_run"] / "final.pt")["model"]
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert [m["epoch"] for m in metrics(images_seen["killed_run"])] == [0, 1]
    ref = {(r["method"], r["metric"]): r["value"] for r in rows(images_seen["straight"])}
    assert {(r["method"], r["metric"]): r["value"] for r in rows(images_seen["killed"])} == ref


def test_table_footnote_says_which_budget_was_matched(images_seen, capsys):
    capsys.readouterr()
    assert main(["table", str(images_seen["straight"])]) == 0
    out = capsys.readouterr().out
    assert "Pretrained to equal images seen, 1,500 per method" in out, out


def test_wall_time_budget_fixes_and_records_its_step_count(tmp_path):
    seconds = 1.5
    out = tmp_path / "out"
    suite = write(tmp_path / "s.yaml", f"[{BYOL}]", f", budget: {{wall_time_s: {seconds}}}")
    assert main(["run", suite, "--out", str(out), "--quiet"]) == 0
    r = next(x for x in rows(out) if x["metric"] == "top1")
    assert (r["budget_kind"], r["budget_value"]) == ("wall_time_s", seconds)
    assert r["budget_steps"] > 0 and r["compute_steps"] == r["budget_steps"] and r["budget_step_time_s"] > 0
    assert r["budget_steps"] == max(1, math.floor(seconds / r["budget_step_time_s"]))
    assert r["epochs"] is None and r["epochs_started"] == math.ceil(r["budget_steps"] / PER_EPOCH)
    saved = json.loads((run_dir(out, "byol") / PLAN_FILE).read_text())
    assert saved["step_time_s"] == r["budget_step_time_s"] and saved["total_steps"] == r["budget_steps"]
    print(f"wall-time budget {seconds} s: estimate {r['budget_step_time_s'] * r['budget_steps']:.3f} s "
          f"({r['budget_steps']} steps x {r['budget_step_time_s'] * 1e3:.1f} ms), actual {r['compute_wall_s']:.3f} s",
          file=sys.stderr)


def test_resume_reuses_a_wall_time_plan(tmp_path):
    spec = expand(parse_suite(read_suite_yaml(write(tmp_path / "s.yaml", f"[{BYOL}]",
                                                    ", budget: {wall_time_s: 2}"))))[0].method
    first = plan(spec.budget, spec.epochs, 1294, 64, 1, tmp_path, resume=False, estimate=lambda: 0.1)
    assert (first.total_steps, first.epochs, first.step_time_s) == (20, 1, 0.1)

    def remeasured():
        raise AssertionError("a resumed wall-time run must keep its schedule")

    again = plan(spec.budget, spec.epochs, 1294, 64, 1, tmp_path, resume=True, estimate=remeasured)
    assert (again.total_steps, again.step_time_s) == (20, 0.1)


def _suite(tmp_path: Path, methods: str, pretrain: str):
    return parse_suite(read_suite_yaml(write(tmp_path / "s.yaml", methods, pretrain)))


def test_suites_without_a_budget_keep_their_run_ids(tmp_path):
    plain = expand(_suite(tmp_path, f"[random, {BYOL}]", ", epochs: 2"), amp="off")
    # optimizer settings that existed before budgets; later ones (wd schedule, clipping, layer decay) are left
    # out of the config while they keep their defaults, so old run ids stay
    old_optim = ("optimizer", "base_lr", "weight_decay", "momentum", "warmup_epochs", "lars_eta",
                 "exclude_bias_and_norm", "betas")
    for spec in plain:  # the run id is the hash of the config as it was before budgets existed
        m, b, d = spec.method, spec.backbone, spec.dataset
        optim = {k: m.optim[k] for k in old_optim}
        before = {"method": m.name, "params": m.params, "optim": optim, "views": m.views,
                  "blur_small_images": m.blur_small_images, "epochs": m.epochs, "backbone": b.name,
                  "backbone_kwargs": b.kwargs, "small_stem": b.small_stem, "dataset": d.name,
                  "image_size": d.image_size, "dataset_params": d.params, "seed": spec.seed, "batch_size": 64,
                  "amp": "off", "sync_bn": True}
        digest = hashlib.sha256(json.dumps(before, sort_keys=True, default=str).encode()).hexdigest()[:12]
        assert spec.config() == before and spec.run_id.endswith(digest[:8])
    as_budget = expand(_suite(tmp_path, f"[random, {BYOL}]", ", budget: {epochs: 2}"), amp="off")
    per_method = expand(_suite(tmp_path, f"[random, {BYOL[:-1]}, budget: {{epochs: 2}}}}]", ""), amp="off")
    assert [s.run_id for s in as_budget] == [s.run_id for s in per_method] == [s.run_id for s in plain]
    seen = expand(_suite(tmp_path, f"[random, {BYOL}]", ", budget: {images_seen: 2560}"), amp="off")
    assert seen[0].run_id == plain[0].run_id  # random is not trained: no budget
    assert seen[1].run_id != plain[1].run_id and seen[1].config()["budget"] == {"images_seen": 2560}


BAD = [
    # (methods, pretrain, expected text of the one-line error)
    (f"[{BYOL}]", ", budget: {images_seen: 0}", "pretrain.budget.images_seen: bad value 0; allowed: an integer in [1, 1000000000000]"),
    (f"[random, {BYOL[:-1]}, budget: {{images_seen: -5}}}}]", "", "methods[1].budget.images_seen: bad value -5"),
    (f"[{BYOL[:-1]}, budget: {{wall_time_s: 0}}}}]", "", "methods[0].budget.wall_time_s: bad value 0"),
    (f"[{BYOL[:-1]}, budget: {{wall_time_s: soon}}}}]", "", "methods[0].budget.wall_time_s: bad value 'soon'"),
    (f"[{BYOL}]", ", budget: {steps: 5}", "pretrain.budget.steps: unknown key"),
    (f"[{BYOL}]", ", budget: {}", "pretrain.budget: bad value {}; allowed: a mapping with exactly one of"),
    (f"[{BYOL}]", ", budget: {epochs: 2, images_seen: 100}", "pretrain.budget: bad value"),
    (f"[{BYOL}]", ", budget: 100", "pretrain.budget: bad value 100; allowed: a mapping"),
    (f"[{BYOL}]", ", epochs: 3, budget: {images_seen: 100}", "pretrain.budget: given together with pretrain.epochs"),
    (f"[{BYOL[:-1]}, epochs: 3, budget: {{images_seen: 100}}}}]", "",
     "methods[0].budget: given together with methods[0].epochs"),
    ("[{name: random, budget: {images_seen: 100}}]", "", "methods[0].budget: bad value"),
    (f"[{BYOL[:-1]}, budget: {{epochs: 0}}}}]", "", "methods[0].budget.epochs: bad value 0"),
]


@pytest.mark.parametrize("methods,pretrain,expected", BAD)
def test_bad_budgets_fail_in_one_line_and_create_nothing(tmp_path, capsys, methods, pretrain, expected):
    out = tmp_path / "out"
    suite = write(tmp_path / "s.yaml", methods, pretrain)
    assert main(["run", suite, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not out.exists()
