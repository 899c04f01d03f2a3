"""A ViT through the CLI: validate's image-size and forward-shape checks (one line, exit 2), a tiny ViT trained
with MoCo v3's ViT options on digits and evaluated with kNN and linear, and a crashed run shown as failed."""
from __future__ import annotations

import pytest
import torch

from conftest import results_rows
from ssl_bench.cli.main import main
from ssl_bench.engine import checkpoint

VIT_SUITE = """
name: vit_tiny
datasets: [{{name: digits, image_size: 32}}]
backbones: [{{name: vit_tiny_patch16_224, label: vit-t4, kwargs: {{{kwargs}}}}}]
methods:
  - name: moco_v3
    params: {{proj_hidden_dim: 32, proj_dim: 16, pred_hidden_dim: 32, temperature: 0.2, proj_layers: 3,
              pred_last_bn: true, freeze_patch_embed: true}}
    optim: {{optimizer: adamw, base_lr: 1.5e-4, weight_decay: 0.1, warmup_epochs: 0, clip_grad: 3.0,
             weight_decay_end: 0.2}}
pretrain: {{epochs: 1, batch_size: 128, amp: "off", num_workers: 0, log_every: 5}}
evaluations:
  - {{name: knn, params: {{k: 10}}}}
  - {{name: linear, params: {{num_l2: 3, max_iter: 200}}}}
output: {{table: true, report: false}}
"""
TINY = "patch_size: 4, depth: 2, embed_dim: 48, num_heads: 2"


def _suite(tmp_path, kwargs: str = TINY, text: str = VIT_SUITE) -> str:
    path = tmp_path / "vit.yaml"
    path.write_text(text.format(kwargs=kwargs))
    return str(path)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("command", ["validate", "run"])
def test_an_img_size_that_does_not_fit_the_images_is_one_line_exit_2(tmp_path, capsys, command):
    out = tmp_path / "out"
    args = [command, _suite(tmp_path, f"img_size: 224, {TINY}")] + (["--out", str(out)] if command == "run" else [])
    assert main(args) == 2
    assert _one_line_error(capsys).startswith(
        "error: backbones[0]: 'vit_tiny_patch16_224' cannot take the 32x32 images of datasets[0] 'digits' "
        "(AssertionError: Input height (32) doesn't match model (224).); allowed: kwargs that fit 32 px")
    assert not out.exists()  # nothing created


def test_a_backbone_that_does_not_give_pooled_features_is_refused_at_validate(tmp_path, capsys):
    text = VIT_SUITE.replace("vit_tiny_patch16_224, label: vit-t4", "resnet18, label: r18")
    assert main(["validate", _suite(tmp_path, "channels: [8, 8, 8, 8], global_pool: ''", text)]) == 2
    assert "error: backbones[0]: 'resnet18' gives features of shape (2, 8, 4, 4) for a batch of 2 32 px images " \
           "of datasets[0] 'digits'; allowed: a backbone whose forward gives (batch, num_features=8)" \
           in _one_line_error(capsys)


def test_without_img_size_the_vit_is_built_for_the_suites_images(tmp_path, capsys):
    assert main(["validate", _suite(tmp_path)]) == 0
    assert main(["validate", _suite(tmp_path, TINY.replace("patch_size: 4", "patch_size: 16"))]) == 0  # 2x2 grid


@pytest.mark.slow
def test_a_tiny_vit_trains_with_moco_v3_and_is_evaluated_by_knn_and_linear(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", _suite(tmp_path), "--out", str(out), "--quiet"]) == 0
    rows = results_rows(out)
    assert {(r["protocol"], r["status"]) for r in rows} == {("knn", "ok"), ("linear", "ok")}
    for r in rows:
        assert 10 < r["value"] <= 100, r  # above chance (10 classes) after one epoch
        assert r["image_size"] == 32 and r["optim"]["clip_grad"] == 3.0
    run_dir = next((out / "runs").iterdir())
    trained = checkpoint.load(run_dir / "final.pt")["model"]
    torch.manual_seed(0)  # the run seed: the backbone's initial weights
    from ssl_bench.backbones import create_backbone

    fresh = create_backbone("vit_tiny_patch16_224", in_chans=1, image_size=32, patch_size=4, depth=2, embed_dim=48,
                            num_heads=2).state_dict()
    assert torch.equal(trained["backbone.patch_embed.proj.weight"], fresh["patch_embed.proj.weight"])  # frozen
    assert not torch.equal(trained["backbone.blocks.0.attn.qkv.weight"], fresh["blocks.0.attn.qkv.weight"])
    assert "linear top1" in capsys.readouterr().out  # the table


CRASH_PLUGIN = '''
from ssl_bench.method import Method
from ssl_bench.registry import register_method


@register_method("crashes")
class Crashes(Method):
    def training_step(self, views, labels=None):
        raise RuntimeError("boom in training_step")
'''


def test_a_run_that_crashes_is_failed_with_its_reason_in_status(tmp_path, capsys):
    (tmp_path / "crash_plugin.py").write_text(CRASH_PLUGIN)
    text = f"""
name: crash
plugins: [crash_plugin]
datasets: [{{name: digits, image_size: 8}}]
backbones: [{{name: resnet18, kwargs: {{channels: [8, 8, 8, 8]}}}}]
methods: [crashes, random]
pretrain: {{epochs: 1, batch_size: 64, amp: "off", num_workers: 0}}
evaluations: [{{name: knn, params: {{k: 10}}}}]
output: {{table: false, report: false}}
"""
    suite = tmp_path / "crash.yaml"
    suite.write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 3  # the suite went on: random ran
    err = capsys.readouterr().err
    assert "crashed: RuntimeError: boom in training_step; recorded as failed rows" in err
    assert main(["status", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    crashed = next(line for line in lines if line.startswith("crashes-"))
    assert " failed " in crashed and "crashed: RuntimeError: boom in training_step" in crashed
    assert any(line.startswith("random-") and " done " in line for line in lines)
    run_dir = next(p for p in (out / "runs").iterdir() if p.name.startswith("crashes-"))
    assert "raise RuntimeError(\"boom in training_step\")" in (run_dir / "error.txt").read_text()


# [M3 CONFIG.md] ViT-Small/Base, 300 epochs, batch 4096, transcribed here: --optimizer=adamw --lr=1.5e-4
# --weight-decay=.1 --warmup-epochs=40 --stop-grad-conv1 --moco-m-cos --moco-t=.2 (momentum: 0.99 default);
# main_moco.py line 229 gives AdamW all of model.parameters() (nothing excluded from decay)
M3_VIT = {"optimizer": "adamw", "base_lr": 1.5e-4, "weight_decay": 0.1, "warmup_epochs": 40,
          "exclude_bias_and_norm": False, "exclude_tokens": False}


def test_moco_v3_vit_preset_follows_config_md_and_builds_the_vit_heads(capsys):
    import yaml

    from ssl_bench.backbones import create_backbone
    from ssl_bench.registry import METHODS
    from ssl_bench.config.suite import parse_suite

    text = VIT_SUITE.format(kwargs=TINY).replace(
        "  - name: moco_v3\n", "  - name: moco_v3\n    preset: moco_v3-vit-300ep\n").replace("epochs: 1,", "epochs: 300,")
    raw = yaml.safe_load(text)
    raw["methods"][0].pop("params"), raw["methods"][0].pop("optim")
    m = parse_suite(raw).methods[0]
    assert {k: m.optim[k] for k in M3_VIT} == M3_VIT and m.preset == "moco_v3-vit-300ep"
    assert (m.params["temperature"], m.params["tau_base"], m.params["freeze_patch_embed"]) == (0.2, 0.99, True)
    assert "assumes pretrain.batch_size 4096" in capsys.readouterr().err  # this suite's batch is 128
    raw["methods"][0]["preset"] = "paper"  # at 300 epochs `paper` stays the ResNet recipe (LARS)
    assert parse_suite(raw).methods[0].optim["optimizer"] == "lars"
    torch.manual_seed(0)
    net = create_backbone("vit_tiny_patch16_224", in_chans=1, image_size=32, patch_size=4, depth=1, embed_dim=48,
                          num_heads=2)
    method = METHODS.get("moco_v3")(net, **{**m.params, "proj_hidden_dim": 32, "pred_hidden_dim": 32})
    linears = [x for x in method.projector if isinstance(x, torch.nn.Linear)]
    assert [(x.in_features, x.out_features) for x in linears] == [(48, 32), (32, 32), (32, 256)]  # 3 layers
    last = list(method.predictor)[-1]
    assert isinstance(last, torch.nn.BatchNorm1d) and not last.affine  # MoCo_ViT's predictor ends in BN
    assert not any(p.requires_grad for p in method.backbone.patch_embed.parameters())
    assert not any(p.requires_grad for p in method.momentum_backbone.parameters())


def test_a_run_that_crashed_under_torchrun_is_failed_from_its_traceback_file(tmp_path):
    """Under torchrun a crash is raised again without rows (its peer may be what died): status reads
    RUN/error.txt, and the suite does not count as finished."""
    import json

    from ssl_bench.cli.run import suite_problems
    from ssl_bench.run.status import folder_status, render_status

    run = {"run_id": "moco_v3-vit-digits-s0-abcd1234", "method": "moco_v3", "backbone": "vit", "dataset": "digits",
           "seed": 0, "epochs": 3, "budget": None}
    (tmp_path / "matrix.json").write_text(json.dumps({"suite": "x", "evaluations": ["knn:0"], "runs": [run]}))
    assert folder_status(tmp_path)[0]["state"] == "pending"
    run_dir = tmp_path / "runs" / run["run_id"]
    run_dir.mkdir(parents=True)
    (run_dir / "error.txt").write_text('Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
                                       "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
    state = folder_status(tmp_path)[0]
    assert state["state"] == "failed"
    assert state["reason"] == "crashed: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert "failed" in render_status([state]) and "unfinished" in suite_problems(tmp_path)


def test_the_shipped_vit_suite_validates_with_every_vit_method_at_32_px(capsys):
    """suites/vit.yaml (README "ViT suite"): validates, holds the six rows the README's table shows, on a timm ViT
    at 32 px, with the frozen protocols that decide 'above random'."""
    from pathlib import Path

    from ssl_bench.config.suite import load_suite

    path = Path(__file__).resolve().parent.parent / "suites" / "vit.yaml"
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    s = load_suite(path)
    assert {m.name for m in s.methods} == {"random", "supervised", "moco_v3", "dino", "mae", "ijepa"}
    assert [d.image_size for d in s.datasets] == [32] and s.backbones[0].name.startswith("vit_")
    assert {"knn", "linear", "attentive_probe", "quality"} <= {e.name for e in s.evaluations}
    dino = next(m for m in s.methods if m.name == "dino")
    assert all(v["flip_p"] == 0.0 for v in dino.views)  # no flips: a mirrored digit is another symbol
