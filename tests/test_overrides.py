"""Command-line overrides and sweeps (issue 27 item 2): an override is validated exactly as the same value
written in the suite file (same run ids, same errors), a sweep equals hand-written labelled entries, and
OUT/suite.yaml records the effective suite so that --resume tells a different command line apart."""
from __future__ import annotations

import pytest
import yaml

from conftest import results_rows
from ssl_bench.cli.main import main
from ssl_bench.config.overrides import recorded_text
from ssl_bench.config.run_spec import expand
from ssl_bench.config.suite import load_suite
from ssl_bench.config.suite_yaml import read_suite_yaml


def run_ids(suite) -> list[str]:
    return [r.run_id for r in expand(suite, amp="off")]


def edited(path, tmp_path, name: str, edit) -> str:
    """The suite file with `edit(raw)` applied by hand: the independent reference for an override."""
    raw = read_suite_yaml(path)  # the file reader (YAML 1.2 rules), not the override code
    edit(raw)
    out = tmp_path / name
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(out)


def test_overrides_equal_the_same_values_written_in_the_file(tiny_suite, tmp_path, capsys):
    path = tiny_suite(epochs=2)
    got = load_suite(path, ["pretrain.epochs=5", "methods[1].params.tau_base=0.996", "methods[1].optim.base_lr=0.3"])

    def edit(raw):
        raw["pretrain"]["epochs"] = 5
        raw["methods"][1]["params"]["tau_base"] = 0.996
        raw["methods"][1]["optim"]["base_lr"] = 0.3

    want = load_suite(edited(path, tmp_path, "by_hand.yaml", edit))
    assert run_ids(got) == run_ids(want)
    assert got.methods[1].params["tau_base"] == 0.996 and got.methods[1].epochs == 5
    assert run_ids(got) != run_ids(load_suite(path))
    assert main(["validate", path, "pretrain.epochs=5", "methods[1].params.tau_base=0.996"]) == 0
    assert "ok (2 runs" in capsys.readouterr().out


def test_override_into_a_bare_method_name_and_a_missing_mapping(tiny_suite, tmp_path):
    path = tiny_suite()
    got = load_suite(path, ["methods[0].label=baseline", "pretrain.optim.weight_decay=0.0"])

    def edit(raw):
        raw["methods"][0] = {"name": "random", "label": "baseline"}
        raw["pretrain"]["optim"] = {"weight_decay": 0.0}

    assert run_ids(got) == run_ids(load_suite(edited(path, tmp_path, "by_hand.yaml", edit)))
    assert got.methods[0].label == "baseline"


@pytest.mark.parametrize("override, named", [
    ("pretrain.epoch=5", "pretrain.epoch: unknown key (did you mean 'epochs'?)"),
    ("pretrain.epochs=abc", "pretrain.epochs: bad value 'abc'"),
    ("pretrain.amp=fp8", "pretrain.amp: bad value 'fp8'"),
    ("methods[1].params.tau=0.9", "methods[1].params.tau: unknown key (did you mean 'tau_base'?)"),
    ("methods[7].params.tau_base=0.9", "methods[7]: no such entry"),
    ("pretrain.epochs.x=1", "pretrain.epochs: is 2, not a mapping"),
    ("nosuchfield=1", "nosuchfield: unknown key"),
    ("pretrain..epochs=1", "override 'pretrain..epochs=1': bad path"),
    ("just_a_word", "override 'just_a_word': bad path"),
    ("seeds=[0, 0]", "seeds: bad value [0, 0]"),
])
def test_a_bad_override_is_one_line_naming_its_path(tiny_suite, override, named, capsys):
    assert main(["validate", tiny_suite(), override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {named}") and "\n" not in err, err


def test_sweep_equals_hand_written_labelled_methods(tiny_suite, tmp_path, capsys):
    path = tiny_suite()
    got = load_suite(path, sweeps=["optim.base_lr=0.1,0.3,1.0"])

    def edit(raw):  # the untrained baseline keeps its one entry; each trained method gets one per value
        byol = raw["methods"][1]
        raw["methods"][1:] = [{**byol, "label": f"byol-base_lr{v}", "optim": {**byol["optim"], "base_lr": float(v)}}
                              for v in ("0.1", "0.3", "1.0")]

    want = load_suite(edited(path, tmp_path, "by_hand.yaml", edit))
    assert [m.label for m in got.methods] == ["random", "byol-base_lr0.1", "byol-base_lr0.3", "byol-base_lr1.0"]
    assert run_ids(got) == run_ids(want)
    assert main(["validate", path, "--sweep", "optim.base_lr=0.1,0.3,1.0"]) == 0
    assert "methods: random, byol-base_lr0.1, byol-base_lr0.3, byol-base_lr1.0" in capsys.readouterr().out


def test_two_sweeps_make_a_grid_and_methods_i_sweeps_one_entry(tiny_suite):
    suite = load_suite(tiny_suite(), ["pretrain.epochs=3"],
                       ["methods[1].params.tau_base=0.99,0.996", "optim.base_lr=0.1,0.3"])
    labels = [m.label for m in suite.methods]
    assert labels == ["random", "byol-tau_base0.99-base_lr0.1", "byol-tau_base0.99-base_lr0.3",
                      "byol-tau_base0.996-base_lr0.1", "byol-tau_base0.996-base_lr0.3"]
    got = {(m.params.get("tau_base"), m.optim["base_lr"], m.epochs) for m in suite.methods[1:]}
    assert got == {(t, lr, 3) for t in (0.99, 0.996) for lr in (0.1, 0.3)}
    assert len(set(run_ids(suite))) == 5


@pytest.mark.parametrize("sweep, named", [
    ("optim.base_lr=0.1,abc", "methods[1].optim.base_lr (--sweep optim.base_lr=abc): bad value 'abc'"),
    ("params.nope=1,2", "--sweep params.nope: no method of the suite declares params.nope"),
    ("pretrain.epochs=1,2", "--sweep pretrain.epochs: not a field of a method entry"),
    ("methods[4].optim.base_lr=0.1,0.2", "--sweep methods[4].optim.base_lr: methods[4]: no such entry"),
    ("optim.base_lr=0.1,0.1", "--sweep optim.base_lr: bad values '0.1,0.1'"),
])
def test_a_bad_sweep_is_one_line_naming_its_path(tiny_suite, sweep, named, capsys):
    assert main(["validate", tiny_suite(), "--sweep", sweep]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {named}") and "\n" not in err, err


def test_the_recorded_effective_suite_reads_back_to_the_same_runs(tiny_suite, tmp_path):
    path = tiny_suite()
    suite = load_suite(path, ["pretrain.epochs=3", "methods[1].optim.base_lr=1e-3", "data_root=off"],
                       ["params.tau_base=0.99,0.996"])
    text = recorded_text(suite)
    assert "pretrain.epochs=3 methods[1].optim.base_lr=1e-3 data_root=off --sweep params.tau_base=0.99,0.996" in text
    copy = tmp_path / "effective.yaml"
    copy.write_text(text)
    again = load_suite(copy)
    assert run_ids(again) == run_ids(suite) and again.data_root == "off"  # YAML 1.2: off stays a string
    assert recorded_text(load_suite(path)) == open(path).read()  # without changes: the file as it is


SWEEP_SUITE = """
name: sweepy
datasets: [{name: digits, image_size: 8}]
backbones: [{name: resnet18, label: r18, kwargs: {channels: [4, 8, 8, 8], stem_width: 4}}]
methods: [random]
pretrain: {epochs: 1, batch_size: 256, amp: off}
evaluations: [{name: knn, params: {k: 5}}]
output: {table: true, report: false}
"""


@pytest.mark.slow
def test_cli_run_with_a_sweep_records_it_and_resume_tells_a_different_command_line(tmp_path, capsys):
    suite, out = tmp_path / "sweepy.yaml", tmp_path / "out"
    suite.write_text(SWEEP_SUITE)
    argv = ["run", str(suite), "--out", str(out), "--quiet", "evaluations[0].params.k=7", "--sweep",
            "methods[0].optim.base_lr=0.1,0.3"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    table = captured.out[captured.out.index("| Method"):]
    assert "random-base_lr0.1" in table and "random-base_lr0.3" in table  # the table shows the sweep
    assert "features" not in captured.err and "suite sweepy" not in captured.err  # --quiet: no progress
    rows = results_rows(out)
    assert {r["method"] for r in rows} == {"random-base_lr0.1", "random-base_lr0.3"}
    assert {r["eval_params"]["k"] for r in rows} == {7}
    recorded = (out / "suite.yaml").read_text()
    assert "evaluations[0].params.k=7 --sweep methods[0].optim.base_lr=0.1,0.3" in recorded

    assert main([*argv, "--resume"]) == 0  # the same command line: every run reused, no note
    again = capsys.readouterr().out
    assert again.count("[skip]") == 2 and "differs" not in again
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--resume"]) == 0  # without them: noticed
    plain = capsys.readouterr().out
    assert "note: this suite differs from the one recorded in suite.yaml (command-line changes there: " \
           "evaluations[0].params.k=7 --sweep methods[0].optim.base_lr=0.1,0.3; here: none)" in plain


def test_launcher_workers_get_the_same_overrides_and_sweeps(tiny_suite, tmp_path):
    from ssl_bench.cli.main import build_parser
    from ssl_bench.cli.run import suite_args
    from ssl_bench.run.launchers import LaunchPlan, worker_command

    parser = build_parser()
    given = parser.parse_args(["run", tiny_suite(), "pretrain.epochs=3", "--sweep", "optim.base_lr=0.1,0.3"])
    plan = LaunchPlan(given.suite, tmp_path, 2, 1, {}, suite_args=suite_args(given))
    cmd = worker_command(plan, 1)
    worker, extra = parser.parse_known_args(cmd[cmd.index("run"):])
    assert not extra and worker.worker and worker.resume
    assert (worker.overrides, worker.sweep) == (["pretrain.epochs=3"], ["optim.base_lr=0.1,0.3"])
    assert run_ids(load_suite(worker.suite, worker.overrides, worker.sweep)) == \
        run_ids(load_suite(given.suite, given.overrides, given.sweep))
