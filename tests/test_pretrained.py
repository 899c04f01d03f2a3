"""Evaluating existing weights: checkpoint key layouts -> the same encoder, refusals, export and read back."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from conftest import results_rows
from ssl_bench.weights.formats import detect
from ssl_bench.cli.main import main
from ssl_bench.create import create_backbone
from ssl_bench.weights.load import load_encoder
from ssl_bench.errors import UserError

KW = {"channels": [8, 8, 8, 8], "stem_width": 8}
BACKBONE = "{name: resnet18, label: r18, kwargs: {channels: [8, 8, 8, 8], stem_width: 8}}"


def _net(in_chans: int = 1, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_backbone("resnet18", in_chans=in_chans, image_size=8, **KW)


def _layouts(sd: dict[str, torch.Tensor]) -> dict[str, object]:
    """The same weights in each published layout, written from the layouts' documented key names."""
    head = {"fc.weight": torch.randn(10, 8), "fc.bias": torch.randn(10)}
    mlp = {"fc.0.weight": torch.randn(16, 8), "fc.2.weight": torch.randn(4, 16)}
    no_tracked = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    seq = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    return {
        "torchvision": {**sd, **head},
        "simclr_v1": {"state_dict": {**sd, **head}},  # tonylins/simclr-converter
        "byol": {**no_tracked, **head},  # ajtejankar/byol-convert: no num_batches_tracked
        "moco_v2": {"epoch": 200, "arch": "resnet50", "state_dict": {
            **{f"module.encoder_q.{k}": v for k, v in {**sd, **mlp}.items()},
            **{f"module.encoder_k.{k}": v + 1 for k, v in sd.items()},
            "module.queue": torch.randn(4, 32), "module.queue_ptr": torch.zeros(1)}},
        "moco_v3": {"state_dict": {**{f"module.base_encoder.{k}": v for k, v in {**sd, **mlp}.items()},
                                   **{f"module.momentum_encoder.{k}": v + 1 for k, v in sd.items()},
                                   "module.predictor.0.weight": torch.randn(4, 4)}},
        "solo_learn": {"epoch": 999, "state_dict": {**{f"backbone.{k}": v for k, v in sd.items()},
                                                    **{f"momentum_backbone.{k}": v + 1 for k, v in sd.items()},
                                                    "projector.0.weight": torch.randn(4, 8),
                                                    "classifier.weight": torch.randn(10, 8)}},
        "lightly": {**{f"backbone.{seq[k.split('.')[0]]}.{k.split('.', 1)[1]}": v for k, v in sd.items()},
                    "projection_head.layers.0.weight": torch.randn(4, 8)},
        "ssl_bench": {"model": {**{f"backbone.{k}": v for k, v in sd.items()}, "projector.0.weight":
                                torch.randn(4, 8)}, "stats": {"steps": 3}},
    }


@pytest.mark.slow
def test_every_layout_gives_the_same_encoder(tmp_path):
    src = _net(seed=1).eval()
    x = torch.rand(6, 1, 8, 8)
    want = src(x)
    for fmt, ckpt in _layouts(src.state_dict()).items():
        path = tmp_path / f"{fmt}.pth"
        torch.save(ckpt, path)
        expected = "torchvision" if fmt in ("simclr_v1", "byol") else fmt
        assert detect(torch.load(path, weights_only=True)) == expected
        for given in ("auto", fmt):  # detected, and an explicit format
            net = _net(seed=2).eval()
            info = load_encoder(net, path, given)
            assert torch.equal(net(x), want), (fmt, given)
            assert info["keys_loaded"] + info["keys_missing"] == len(src.state_dict())
            assert info["checkpoint_sha256"] and info["checkpoint_bytes"] == path.stat().st_size
        if fmt in ("moco_v2", "moco_v3", "solo_learn"):
            assert info["keys_ignored"] > len(src.state_dict())  # the momentum copy, heads, queue


def test_rgb_first_conv_is_adapted_for_a_grayscale_backbone(tmp_path):
    rgb = _net(in_chans=3, seed=3)
    torch.save(rgb.state_dict(), tmp_path / "rgb.pth")
    gray = _net(in_chans=1)
    info = load_encoder(gray, tmp_path / "rgb.pth")
    assert torch.equal(gray.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))  # timm adapt_input_conv
    assert "3 input channels summed into 1" in info["input_adapted"]


def test_refusals_name_the_file(tmp_path):
    sd = _net().state_dict()
    cases = {"missing.pth": ({k: v for k, v in sd.items() if not k.startswith("layer4.")}, "key(s) missing"),
             "shape.pth": ({k: (torch.zeros(16, *v.shape[1:]) if k == "layer1.0.conv1.weight" else v)
                            for k, v in sd.items()}, "shape mismatch at 'layer1.0.conv1.weight'"),
             "unknown.pth": ({"encoder.weight": torch.zeros(1)}, "cannot tell its key layout")}
    for name, (obj, text) in cases.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(UserError) as err:
            load_encoder(_net(), tmp_path / name)
        assert name in str(err.value) and text in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(UserError, match="notes.txt: not a PyTorch checkpoint"):
        load_encoder(_net(), tmp_path / "notes.txt")


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = ""


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    global MARKER
    MARKER = str(tmp_path / "executed")
    torch.save({"state_dict": _net().state_dict(), "hook": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="evil.pth: refused: it holds objects other than tensors"):
        load_encoder(_net(), tmp_path / "evil.pth")
    assert not Path(MARKER).exists()


def _suite(tmp_path: Path, methods: str, evaluations: str = "[{name: knn, params: {k: 10}}]") -> str:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: released\ndatasets: [{{name: digits, image_size: 8}}]\nbackbones: [{BACKBONE}]\n"
                    f"methods: {methods}\npretrain: {{epochs: 2, batch_size: 64, amp: off}}\n"
                    f"evaluations: {evaluations}\noutput: {{table: false, report: false}}\n")
    return str(path)


@pytest.mark.slow
def test_pretrained_rows_record_the_checkpoint_and_failures_are_rows(tmp_path, capsys):
    layouts = _layouts(_net(seed=4).state_dict())
    for fmt in ("moco_v2", "solo_learn"):
        torch.save(layouts[fmt], tmp_path / f"{fmt}.pth")
    torch.save({k: v for k, v in _net().state_dict().items() if "layer4" not in k}, tmp_path / "broken.pth")
    methods = ("[{name: pretrained, label: moco, params: {checkpoint: %s}}, {name: pretrained, label: solo, "
               "params: {checkpoint: %s, format: solo_learn}}, {name: pretrained, label: broken, params: "
               "{checkpoint: %s}}]" % (tmp_path / "moco_v2.pth", tmp_path / "solo_learn.pth", tmp_path / "broken.pth"))
    out = tmp_path / "out"
    assert main(["run", _suite(tmp_path, methods), "--out", str(out), "--quiet"]) == 3  # the broken one failed
    rows = {(r["method"], r["metric"]): r for r in results_rows(out)}
    moco, solo = rows[("moco", "top1")], rows[("solo", "top1")]
    assert moco["value"] == solo["value"]  # the same weights in two layouts: the same kNN
    released = moco["released_weights"]
    assert released["checkpoint_format"] == "moco_v2" and released["keys_missing"] == 0
    assert rows[("broken", None)]["status"] == "failed" and "key(s) missing" in rows[("broken", None)]["error"]
    capsys.readouterr()
    assert main(["table", str(out)]) == 0
    table = capsys.readouterr().out
    assert "moco ◆" in table and "released weights (method `pretrained`) evaluated with our protocol" in table
    bad = _suite(tmp_path, "[{name: pretrained, params: {checkpoint: /no/such.pth}}]")
    assert main(["validate", bad]) == 2


@pytest.mark.slow
def test_export_then_read_back_gives_the_same_numbers(tmp_path, capsys):
    evals = "[{name: knn, params: {k: 10}}, {name: linear, params: {num_l2: 3}}]"
    out = tmp_path / "out"
    assert main(["run", _suite(tmp_path, "[byol]", evals), "--out", str(out), "--quiet"]) in (0, 3)
    run = next((out / "runs").glob("byol-*"))
    dest = tmp_path / "byol_tiny.pth"
    assert main(["export", str(run), "--format", "timm", "--output", str(dest)]) == 0
    card = json.loads(Path(f"{dest}.json").read_text())
    assert card["method"] == "byol" and card["epochs"] == 2 and {r["protocol"] for r in card["results"]} == \
        {"knn", "linear"}
    assert main(["export", str(run), "--format", "timm", "--output", str(dest)]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err
    back = tmp_path / "back"
    methods = "[{name: pretrained, label: byol, params: {checkpoint: %s, format: timm}}]" % dest
    assert main(["run", _suite(tmp_path, methods, evals), "--out", str(back), "--quiet"]) in (0, 3)
    trained = {(r["protocol"], r["metric"]): r["value"] for r in results_rows(out) if r["method"] == "byol"}
    loaded = {(r["protocol"], r["metric"]): r["value"] for r in results_rows(back)}
    assert loaded == trained


def test_offline_timm_weights_from_a_local_file(tmp_path, capsys):
    src = _net(seed=5)
    torch.manual_seed(0)
    plain = create_backbone("resnet18", in_chans=1, image_size=64, small_stem=False, channels=[8, 8, 8, 8])
    torch.save(plain.state_dict(), tmp_path / "r18.pth")
    net = create_backbone("resnet18", in_chans=1, image_size=64, small_stem=False, channels=[8, 8, 8, 8],
                          pretrained=True, pretrained_cfg_overlay={"file": str(tmp_path / "r18.pth")})
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), plain.state_dict().values()))
    del src
    suite = tmp_path / "w.yaml"
    suite.write_text(_suite(tmp_path, "[random]") and Path(_suite(tmp_path, "[random]")).read_text().replace(
        BACKBONE, "{name: resnet18, pretrained: true, pretrained_file: /no/such/file.pth}"))
    assert main(["validate", str(suite)]) == 2
    assert "backbones[0].pretrained_file: bad value '/no/such/file.pth'" in capsys.readouterr().err
