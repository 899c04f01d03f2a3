"""Issue #14 item 2 / #15 item 4: the kNN monitor (`pretrain.knn_monitor`), the `knn_max` protocol read back from
metrics.jsonl, and the online linear head (`pretrain.online_linear`) with its `online_linear` protocol.

Tiny data throughout: digits at 8 px, a narrow resnet18, BYOL for 3 epochs (the end-to-end pair), a pixel
"encoder" where the head must learn something."""
from pathlib import Path

import pytest
import torch
from torch import nn

from ssl_bench.cli.main import main
from ssl_bench.create import create_dataset
from ssl_bench.engine import checkpoint
from ssl_bench.evalkit.monitors import KnnMonitor, fixed_subset, knn_curve
from ssl_bench.engine.online_head import OnlineLinear, online_logits
from ssl_bench.engine.trainer import TrainSettings, pretrain
from ssl_bench.method import OPTIM_DEFAULTS, Method

from conftest import metrics_rows as metrics, results_rows as records

pytestmark = pytest.mark.slow  # every test here trains or runs a suite (quick loop: -m "not slow")

SUITE = """
name: monitors
seeds: [0]
datasets: [{{name: digits, image_size: 8}}]
backbones: [{{name: resnet18, label: r18-tiny, kwargs: {{channels: [4, 8, 8, 8], stem_width: 4}}}}]
methods: {methods}
pretrain: {{epochs: 3, batch_size: 64, amp: off, log_every: 5{pretrain}}}
evaluations: {evaluations}
output: {{table: false, report: false}}
"""
BYOL = ("[{name: byol, params: {proj_hidden_dim: 32, proj_dim: 16, pred_hidden_dim: 32}, "
        "optim: {base_lr: 1.0, warmup_epochs: 1}}]")
MONITORS = ", knn_monitor: {every: 2, val_size: 200}, online_linear: true"
KNN = "{name: knn, params: {k: 10}}"
CPU = torch.device("cpu")


def write(path: Path, methods: str = BYOL, pretrain: str = MONITORS, evaluations: str = f"[{KNN}]") -> str:
    path.write_text(SUITE.format(methods=methods, pretrain=pretrain, evaluations=evaluations))
    return str(path)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """BYOL trained twice: plainly, and with both monitors while being killed between epochs and resumed."""
    root = tmp_path_factory.mktemp("monitors")
    plain, watched = root / "plain", root / "watched"
    assert main(["run", write(root / "plain.yaml", pretrain=""), "--out", str(plain), "--quiet"]) == 0
    suite = write(root / "watched.yaml", evaluations=f"[{KNN}, knn_max, online_linear]")
    mp, seen = pytest.MonkeyPatch(), {}
    real = checkpoint.save_atomic

    def killed_after_logging_epoch_1(obj, path):  # the metrics row of epoch 1 is written, its checkpoint not
        if isinstance(obj, dict) and obj.get("epoch") == 2 and "before_kill" not in seen:
            seen["before_kill"] = metrics(Path(path).parent)
            raise KeyboardInterrupt
        return real(obj, path)

    mp.setattr(checkpoint, "save_atomic", killed_after_logging_epoch_1)
    try:
        assert main(["run", suite, "--out", str(watched), "--quiet"]) == 130
    finally:
        mp.undo()
    assert main(["run", suite, "--out", str(watched), "--quiet", "--resume"]) == 0
    run = {name: next((out / "runs").glob("byol-*")) for name, out in [("plain", plain), ("watched", watched)]}
    return {"plain": plain, "watched": watched, "run": run, "before_kill": seen["before_kill"]}


def test_training_is_bit_identical_with_both_monitors_on_and_a_kill_between(pair):
    a = checkpoint.load(pair["run"]["plain"] / "final.pt")
    b = checkpoint.load(pair["run"]["watched"] / "final.pt")
    assert a["model"].keys() == b["model"].keys()
    for key, value in a["model"].items():  # encoder, heads, EMA target and BN statistics alike
        assert torch.equal(value, b["model"][key]), key
    assert "online_linear" not in a and set(b["online_linear"]) == {"head", "optimizer", "views_per_image"}
    losses = [[r["loss"] for r in metrics(pair["run"][k])] for k in ("plain", "watched")]
    assert losses[0] == losses[1]
    knn = [{r["metric"]: r["value"] for r in records(pair[k]) if r["protocol"] == "knn"} for k in ("plain", "watched")]
    assert knn[0] == knn[1]


def test_monitor_rows_every_n_epochs_and_at_the_last_once_each_after_resume(pair):
    rows = metrics(pair["run"]["watched"])
    assert [r["epoch"] for r in rows] == [0, 1, 2]  # the row of the killed epoch was dropped and written again
    assert ["knn_top1" in r for r in rows] == [False, True, True]  # every: 2 -> epoch index 1, and the last
    for r in rows:
        if "knn_top1" in r:
            assert 0.0 <= r["knn_top1"] <= 100.0 and r["knn_time_s"] > 0
        assert 0.0 <= r["online_train_top1"] <= 100.0 and r["online_loss"] > 0
    # The epoch trained before the kill and again after the resume logged exactly the same numbers: the fixed
    # val subset gives the same kNN value, and the head was restored from the checkpoint bit for bit.
    before = pair["before_kill"][1]
    timing = {"time_s", "images_per_s", "knn_time_s"}
    assert {k: v for k, v in before.items() if k not in timing} == {k: v for k, v in rows[1].items() if k not in timing}


def test_knn_max_is_the_max_of_the_logged_curve(pair):
    curve = [(r["epoch"] + 1, r["knn_top1"]) for r in metrics(pair["run"]["watched"]) if "knn_top1" in r]
    assert knn_curve(pair["run"]["watched"]) == curve
    (row,) = [r for r in records(pair["watched"]) if r["protocol"] == "knn_max"]
    assert row["status"] == "ok" and row["metric"] == "top1"
    assert row["value"] == max(v for _, v in curve)
    assert row["extra"]["curve"] == [list(p) for p in curve]
    assert dict(curve)[row["extra"]["best_epoch"]] == row["value"]


def test_online_linear_rows_on_the_test_split(pair):
    rows = {r["metric"]: r for r in records(pair["watched"]) if r["protocol"] == "online_linear"}
    assert set(rows) == {"top1", "top5"}
    assert all(r["status"] == "ok" and 0 <= r["value"] <= 100 for r in rows.values())
    assert rows["top1"]["extra"]["n_test"] == len(create_dataset("digits").test)
    # its recipe, as the run recorded it: BYOL's online encoder ran on both views; the suite's head lr
    assert rows["top1"]["recipe"] == {"optimizer": "sgd", "classifier_lr_per_256": 0.1, "weight_decay": 0.0,
                                      "schedule": "as pretraining", "views": 2, "split": "test"}
    knn_max = next(r for r in records(pair["watched"]) if r["protocol"] == "knn_max")
    assert (knn_max["recipe"]["split"], knn_max["recipe"]["n_eval"], knn_max["recipe"]["every"]) == ("val", 200, 2)


def test_untrained_baseline_knn_max_is_its_one_point_curve_and_online_linear_does_not_apply(tmp_path):
    suite = write(tmp_path / "s.yaml", methods="[random]", evaluations="[knn_max, online_linear]")
    out = tmp_path / "out"
    assert main(["run", suite, "--out", str(out), "--quiet"]) == 0  # "skipped" is not a failure
    recs = {r["protocol"]: r for r in records(out)}
    assert recs["knn_max"]["status"] == "ok" and recs["knn_max"]["extra"]["curve"][0][0] == 0
    assert 0 <= recs["knn_max"]["value"] <= 100
    assert recs["online_linear"]["status"] == "skipped" and "not pretrained" in recs["online_linear"]["error"]
    assert main(["run", suite, "--out", str(out), "--quiet", "--resume"]) == 0  # not retried
    assert len(records(out)) == len(recs)  # knn_max top1 and the skipped row, each once


@pytest.mark.parametrize("pretrain,evaluations,message", [
    ("", "[knn_max]", "evaluations[0].name: 'knn_max' needs pretrain.knn_monitor, which is off"),
    (", knn_monitor: true", f"[{KNN}, online_linear]",
     "evaluations[1].name: 'online_linear' needs pretrain.online_linear, which is off"),
    (", knn_monitor: {every: 0}", "[knn_max]", "pretrain.knn_monitor.every: bad value 0; allowed: an integer >= 1"),
    (", knn_monitor: {evry: 2}", "[knn_max]", "pretrain.knn_monitor.evry: unknown key (did you mean 'every'?)"),
    (", knn_monitor: {bank_size: 0}", "[knn_max]", "pretrain.knn_monitor.bank_size: bad value 0; allowed: null"),
    (", knn_monitor: {temperature: 0}", "[knn_max]", "pretrain.knn_monitor.temperature: bad value 0"),
    (", online_linear: yes", "[online_linear]", "pretrain.online_linear: bad value 'yes'; allowed: false, true"),
    (", online_linear: {base_lr: -1}", "[online_linear]", "pretrain.online_linear.base_lr: bad value -1"),
])
def test_misconfigured_monitors_are_one_line_user_errors(tmp_path, capsys, pretrain, evaluations, message):
    out = tmp_path / "out"
    suite = write(tmp_path / "s.yaml", pretrain=pretrain, evaluations=evaluations)
    assert main(["run", suite, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_monitor_is_due_every_n_epochs_and_at_the_last():
    due = KnnMonitor.due
    fake = type("M", (), {"cfg": {"every": 2}, "epochs": 5})()
    assert [e for e in range(5) if due(fake, e)] == [1, 3, 4]
    fake.cfg["every"] = 1
    assert [e for e in range(3) if due(fake, e)] == [0, 1, 2]


def _tiny_encoder() -> nn.Module:
    from ssl_bench.backbones import create_backbone

    torch.manual_seed(0)
    return create_backbone("resnet18", in_chans=1, image_size=8, small_stem="auto", channels=[4, 8, 8, 8],
                           stem_width=4)


def test_monitor_uses_a_fixed_subset_and_leaves_modes_rng_and_bn_statistics_alone():
    bundle = create_dataset("digits")
    assert torch.equal(fixed_subset(1000, 50, 7), fixed_subset(1000, 50, 7))
    assert fixed_subset(100, 100, 7) is None and fixed_subset(100, None, 7) is None
    enc = _tiny_encoder().train()
    enc.fc_like = nn.Dropout().eval()  # a submodule deliberately in eval mode stays so
    cfg = {"every": 1, "k": 20, "temperature": 0.07, "val_size": 50, "bank_size": 300}
    mon = KnnMonitor(cfg, enc, bundle, 8, CPU, epochs=1)
    assert len(mon.val) == 50 and len(mon.bank) == 300
    buffers = {k: v.clone() for k, v in enc.state_dict().items()}
    torch.manual_seed(123)
    first = mon(0)
    after_rng = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after_rng)  # the global RNG did not move
    again = KnnMonitor(cfg, enc, bundle, 8, CPU, epochs=1)(0)
    assert first["knn_top1"] == again["knn_top1"] and 0 <= first["knn_top1"] <= 100
    assert enc.training and not enc.fc_like.training
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in buffers.items())  # BN running stats untouched


class _Pixels(nn.Module):
    """A stand-in encoder: the flattened image (64 features on digits), optionally through a linear layer."""

    def __init__(self, out: int | None = None):
        super().__init__()
        self.proj = nn.Linear(64, out) if out else nn.Identity()
        self.num_features = out or 64

    def forward(self, x):
        return self.proj(x.flatten(1))


class _TwoViews(Method):
    """Calls its encoder once per view, as BYOL does; the loss only needs some trainable parameter."""

    def __init__(self, backbone, num_classes=None):
        super().__init__(backbone, num_classes)
        self.scale = nn.Parameter(torch.ones(()))

    def training_step(self, views, labels=None):
        return {"loss": sum(((self.backbone(v) * self.scale) ** 2).mean() for v in views)}


def test_online_head_gets_no_encoder_gradient_and_sees_only_the_training_forward():
    torch.manual_seed(0)
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    grads = []
    for with_head in (False, True):
        torch.manual_seed(1)
        method = _TwoViews(_Pixels(16))
        head = OnlineLinear(method.encoder(), 10, 1.0, 32, seed=0, device=CPU) if with_head else None
        if head is not None:
            method.encoder()(x)  # outside capture(): not collected
            assert head._feats == []
            with head.capture():
                out = method([x, x.flip(-1)])
            assert [(side, f.shape) for side, f in head._feats] == [(8, (32, 16)), (8, (32, 16))]
            assert not any(f.requires_grad for _, f in head._feats)
        else:
            out = method([x, x.flip(-1)])
        out["loss"].backward()
        before = {n: p.grad.clone() for n, p in method.named_parameters()}
        if head is not None:
            w = head.head.weight.detach().clone()
            head.step(y, 0.5)
            assert not torch.equal(w, head.head.weight)  # the head learned ...
            for n, p in method.named_parameters():  # ... and the encoder's gradients are what they were
                assert torch.equal(p.grad, before[n]), n
            head.close()
        grads.append(before)
    assert all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0])  # same as a run without the head


def test_online_head_trained_by_the_engine_beats_chance_and_is_checkpointed(tmp_path):
    bundle = create_dataset("digits")
    method = _TwoViews(_Pixels())
    head = OnlineLinear(method.encoder(), 10, base_lr=1.0, batch_size=64, seed=0, device=CPU)
    settings = TrainSettings(epochs=3, batch_size=64, optim={**OPTIM_DEFAULTS, "optimizer": "sgd", "base_lr": 0.1,
                                                             "warmup_epochs": 0}, device=CPU, channels_last=False,
                             progress=False)

    def views(images, gen):  # two "views": the image and its transpose, scaled to [0, 1]
        x = images.float() / 255
        return [x, x.transpose(-1, -2)]

    pretrain(method, bundle.train, views, settings, tmp_path, online_head=head)
    rows = metrics(tmp_path)
    assert rows[-1]["online_train_top1"] > rows[0]["online_train_top1"]
    state = checkpoint.load(tmp_path / "checkpoint.pt")["online_linear"]
    test = bundle.test
    top1 = (online_logits(state, test.images.float().flatten(1) / 255).argmax(1) == test.labels).double().mean()
    assert 100 * top1 > 50, float(top1)  # chance is 10%
    assert head._hook is not None and not method.encoder()._forward_hooks  # pretrain removed its hook
