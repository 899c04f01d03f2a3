"""Issue 27 item 8: every code snippet ssl-bench writes runs. The export model card's load snippets are
executed as a reader would paste them, and the encoder they build must hold the exported weights."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import yaml

from ssl_bench.cli.main import main
from ssl_bench.create import create_backbone
from ssl_bench.weights.snippets import load_snippets


def _run(code: str) -> dict:
    scope: dict = {}
    exec(compile(code, "<model card>", "exec"), scope)  # noqa: S102 - the snippet is the thing under test
    return scope


def _same_weights(model: torch.nn.Module, path: Path) -> bool:
    saved = torch.load(path, weights_only=True)
    got = model.state_dict()
    return set(got) >= set(saved) and all(torch.equal(got[k], v) for k, v in saved.items())


def test_every_snippet_of_an_exported_card_runs(finished_tiny, tmp_path, capsys):
    suite, done = finished_tiny
    out = tmp_path / "out"
    shutil.copytree(done, out)
    run = next((out / "runs").glob("byol-*"))
    dest = tmp_path / "byol_tiny.pth"
    assert main(["export", str(run), "--format", "timm", "--output", str(dest)]) == 0
    card = json.loads(Path(f"{dest}.json").read_text())
    model = _run(card["load"]["timm"])["model"].eval()  # a narrowed small-image stem: ssl-bench's builder
    assert _same_weights(model, dest)
    x = torch.rand(3, 1, 8, 8)
    assert model(x).shape == (3, model.num_features)
    _run(card["load"]["torchvision"])  # says why torchvision cannot hold it, and runs
    assert "not a torchvision ResNet" in capsys.readouterr().out
    entry = yaml.safe_load(card["load"]["ssl_bench"])["methods"]  # the suite entry is a valid suite's methods
    raw = yaml.safe_load(Path(suite).read_text())
    raw["methods"] = entry
    raw["pretrain"]["amp"] = "off"  # YAML 1.1 reads the suite's bare `off` as false: ssl-bench's loader does not
    other = tmp_path / "back.yaml"
    other.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(other)]) == 0


def test_plain_timm_and_torchvision_snippets_load_the_weights(tmp_path):
    torch.manual_seed(0)
    plain = create_backbone("resnet18", in_chans=1, image_size=96, small_stem=False, channels=[8, 8, 8, 8])
    path = tmp_path / "plain.pth"
    torch.save(plain.state_dict(), path)
    code = load_snippets("resnet18", {"channels": [8, 8, 8, 8]}, False, 96, 1, str(path), "timm")
    assert "timm.create_model(" in code["timm"] and "ssl_bench" not in code["timm"]  # timm alone
    assert _same_weights(_run(code["timm"])["model"], path)
    full = create_backbone("resnet18", in_chans=3, image_size=224, small_stem=False)
    path = tmp_path / "full.pth"
    torch.save(full.state_dict(), path)
    code = load_snippets("resnet18", {}, "auto", 224, 3, str(path), "torchvision")
    assert _same_weights(_run(code["torchvision"])["model"], path)  # torchvision's own resnet18
