"""Issue #26 (items 2, 5, 6) and #29 item 6, through the CLI on tiny inputs: YAML values that only blow up once
expanded, absurd budgets, run ids too long for a file name, a backbone listed twice, result rows that are not
measurements, protocols nobody declares, --output over an existing file, and export of a run with a broken
run.json. Each case fails on the code before these fixes."""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
import torch

from ssl_bench.cli.main import main
from test_tables import fixture_records, md_table, write_results
from test_validation_safety import GOOD, assert_one_line_error


# ---- YAML: one long string aliased many times (few nodes, many characters) ------------------------------------
def _string_bomb(where: str, chars: int = 50_000, copies: int = 100) -> str:
    """One `chars`-long string and `copies` aliases of it: a small file of few nodes that expands to
    chars * (copies + 1) characters (the issue's was 996 KB, expanding to 59 GB)."""
    value = f"[&s {'x' * chars}" + ", *s" * copies + "]"
    if where == "description":
        return GOOD.replace("name: t", f"name: t\ndescription: {value}", 1)
    return GOOD.replace("stem_width: 4}", f"stem_width: 4, pretrained_cfg_overlay: {{notes: {value}}}}}", 1)


@pytest.mark.parametrize("where,field", [("description", "description"),
                                        ("kwargs", "backbones[0].kwargs.pretrained_cfg_overlay.notes")])
def test_yaml_string_aliased_many_times_is_refused_naming_its_field(tmp_path, capsys, where, field):
    start = time.perf_counter()
    assert_one_line_error(tmp_path, capsys, _string_bomb(where), f"{field}: expands to more than 4194304 characters")
    assert time.perf_counter() - start < 5.0


def test_yaml_aliases_of_a_short_value_still_pass(tmp_path, capsys):
    for where in ("description", "kwargs"):
        (tmp_path / "s.yaml").write_text(_string_bomb(where, chars=100, copies=100))  # 10 KB once expanded
        assert main(["validate", str(tmp_path / "s.yaml")]) == 0, capsys.readouterr().err


# ---- budgets, run id length, the same backbone twice --------------------------------------------------------------
LONG = "m" * 128  # a safe name may have 128 characters; two of them and a dataset make a 276-character run id


@pytest.mark.parametrize("old,new,expected", [
    ("pretrain: {epochs: 1,", "pretrain: {budget: {wall_time_s: 1.0e12},",
     "pretrain.budget.wall_time_s: bad value 1000000000000.0; allowed: a number of seconds > 0 and at most"),
    ("pretrain: {epochs: 1,", "pretrain: {budget: {images_seen: 1.0e30},",
     "pretrain.budget.images_seen: bad value 1e+30; allowed: an integer in [1, 1000000000000]"),
    ("pretrain: {epochs: 1,", "pretrain: {budget: {wall_time_s: .nan},", "pretrain.budget.wall_time_s: bad value nan"),
    ("backbones: [{name: resnet18, kwargs: {channels: [4, 8, 8, 8], stem_width: 4}}]",
     "backbones: [{name: resnet18, kwargs: {channels: [4, 8, 8, 8], stem_width: 4}}, "
     "{name: resnet18, label: again, kwargs: {stem_width: 4, channels: [4, 8, 8, 8]}}]",
     "backbones[1]: bad value 'again'; allowed: a backbone not listed before (backbones[0] has the same name"),
])
def test_absurd_budgets_long_run_ids_and_repeated_backbones(tmp_path, capsys, old, new, expected):
    assert old in GOOD
    assert_one_line_error(tmp_path, capsys, GOOD.replace(old, new, 1), expected)


def test_a_run_id_too_long_for_a_file_name_is_refused_at_validate(tmp_path, capsys):
    """Two labels of 128 characters (each a valid safe name) make a 276-character run id: 'file name too long'
    once the run's folder is made, after validate said ok."""
    text = GOOD.replace("pred_hidden_dim: 16}}", f"pred_hidden_dim: 16}}, label: {LONG}}}", 1) \
        .replace("name: resnet18,", f"name: resnet18, label: {'b' * 128},", 1)
    assert_one_line_error(tmp_path, capsys, text, "methods[0].label: run ids would be 276 characters")


def test_a_run_id_of_exactly_200_characters_passes_and_201_does_not(tmp_path, capsys):
    for width, code in ((52, 0), (53, 2)):  # 128 + 1 + width + len("-digits-s0-") + 8 = 148 + width
        text = GOOD.replace("pred_hidden_dim: 16}}", f"pred_hidden_dim: 16}}, label: {LONG}}}", 1) \
            .replace("name: resnet18,", f"name: resnet18, label: {'b' * width},", 1)
        (tmp_path / "s.yaml").write_text(text)
        assert main(["validate", str(tmp_path / "s.yaml")]) == code
        assert code == 0 or "run ids would be 201 characters" in capsys.readouterr().err


# ---- result rows that are not measurements ------------------------------------------------------------------------
def _tampered(tmp_path: Path) -> str:
    recs = fixture_records()
    byol = [r for r in recs if r["method"] == "byol" and r["protocol"] == "linear" and r["metric"] == "top1"]
    byol[0]["value"] = -5.0  # seed 0: a negative top-1
    byol[1]["seed"] = "1"  # seed 1: a string
    moco = [r for r in recs if r["method"] == "moco_v2" and r["metric"] == "top1"]
    moco[0]["value"] = 1e308
    moco[1]["error"] = "e" * 3_000_000  # free text: cut, the row stays valid
    simclr = [r for r in recs if r["method"] == "simclr" and r["protocol"] == "linear" and r["metric"] == "top1"]
    simclr[0]["backbone"] = "b" * 3_000_000
    return write_results(tmp_path / "out", recs)


def test_invalid_rows_stay_out_of_the_means_are_shown_invalid_and_named(tmp_path, capsys):
    out = _tampered(tmp_path)
    assert main(["table", out, "--layout", "linear"]) == 0
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if "not valid results" in line]
    assert len(warning) == 1 and "results.jsonl: 4 row(s)" in warning[0], captured.err
    for why in ("value -5 of metric 'top1' is outside [0, 100]", "seed '1' is not an integer >= 0",
                "value 1e+308 of metric 'top1' is outside [0, 100]"):
        assert why in warning[0], warning[0]
    assert len(captured.err) < 5000 and len(captured.out) < 20_000  # no 3 MB label anywhere
    t = md_table(captured.out, "Linear evaluation (frozen encoder)")
    assert t["byol"]["Top-1"].startswith("**74.0** (n=1)") and "[2 invalid]" in t["byol"]["Top-1"]
    mean = statistics.mean([61.0, 62.0])  # moco_v2 seeds 1 and 2 (seed 0 is 1e308)
    assert t["moco_v2"]["Top-1"].startswith(f"{mean:.1f} ± 0.7") and "[1 invalid]" in t["moco_v2"]["Top-1"]
    assert any(k.startswith("simclr") for k in t) and "invalid" in captured.out.split("\n\n")[2]


def test_a_protocol_no_evaluation_declares_is_named(tmp_path, capsys):
    recs = fixture_records() + [dict(fixture_records()[0], protocol="mystery_probe", eval_key="m:1")]
    out = write_results(tmp_path / "out", recs)
    assert main(["table", out]) == 0
    err = capsys.readouterr().err
    assert "protocol(s) 'mystery_probe' (1 rows) are declared by no installed evaluation" in err, err


# ---- --output never overwrites without --force (as export) --------------------------------------------------------
@pytest.mark.parametrize("command", ["table", "report"])
def test_output_refuses_an_existing_file_unless_forced(tmp_path, capsys, command):
    out = write_results(tmp_path / "out", fixture_records())
    target = tmp_path / "mine.txt"
    target.write_text("my notes\n")
    assert main([command, out, "--output", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --output {target}: exists; allowed: a new file name, or --force to replace it"]
    assert target.read_text() == "my notes\n"
    assert main([command, out, "--output", str(target), "--force"]) == 0
    assert target.read_text() != "my notes\n" and ("Linear evaluation" in target.read_text())


# ---- export: run.json garbage is one line before anything is written ----------------------------------------------
@pytest.mark.parametrize("run_json", ["{not json", "[1, 2]", '{"config": "resnet"}', b"\xff\xfe garbage"])
def test_export_with_a_broken_run_json_writes_nothing(tmp_path, capsys, run_json):
    run = tmp_path / "out" / "runs" / "byol-r18-digits-s0-12345678"
    run.mkdir(parents=True)
    torch.save({"model": {"backbone.conv1.weight": torch.zeros(4, 1, 3, 3)}}, run / "final.pt")
    (run / "run.json").write_bytes(run_json if isinstance(run_json, bytes) else run_json.encode())
    dest = tmp_path / "enc.pth"
    assert main(["export", str(run), "--output", str(dest)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run / 'run.json'}: not"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no .pth, no card, no temporary
    (run / "run.json").write_text(json.dumps({"config": {"backbone": "resnet18", "method": "byol"}}))
    assert main(["export", str(run), "--output", str(dest)]) == 0
    card = json.loads(Path(f"{dest}.json").read_text())
    import hashlib

    assert card["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest() and card["method"] == "byol"
