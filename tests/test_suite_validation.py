"""Malformed suites: each gives one line naming the field, exit code 2, and no output folder."""

import pytest

from ssl_bench.cli.main import main

GOOD = """
name: t
datasets: [{name: digits, image_size: 16}]
backbones: [{name: resnet18, kwargs: {channels: [8, 8, 8, 8]}}]
methods: [byol]
pretrain: {epochs: 1, batch_size: 64}
evaluations: [knn]
output: {dir: OUTDIR}
"""

CASES = [
    # (replace this, with this, expected text in the one-line error)
    ("name: t", "name: [1]", "name: bad value [1]"),
    ("name: t\n", "", "name: missing"),
    ("methods: [byol]", "methods: [byl]", "methods[0].name: unknown method 'byl'; did you mean 'byol'?"),
    ("methods: [byol]", "methods: []", "methods: missing or empty"),
    ("methods: [byol]", "methods: [{name: byol, params: {tau: 0.9}}]", "methods[0].params.tau: unknown key"),
    ("methods: [byol]", "methods: [{name: byol, params: {tau_base: fast}}]", "methods[0].params.tau_base: bad value 'fast'"),
    ("methods: [byol]", "methods: [{name: byol, optim: {optimizer: adam}}]", "methods[0].optim.optimizer: bad value 'adam'"),
    ("methods: [byol]", "methods: [{name: byol, augment: {view1: {blur_p: 1.5}}}]", "methods[0].augment.view1.blur_p"),
    ("methods: [byol]", "methods: [{name: byol, augment: {view3: {}}}]", "methods[0].augment.view3: unknown key"),
    ("methods: [byol]", "methods: [{nam: byol}]", "methods[0].nam: unknown key (did you mean 'name'?)"),
    ("datasets: [{name: digits, image_size: 16}]", "datasets: [{name: digitz}]", "unknown dataset 'digitz'; did you mean 'digits'?"),
    ("image_size: 16", "image_size: 2", "datasets[0].image_size: bad value 2"),
    ("image_size: 16", "image_size: 16, params: {val_fraction: big}", "datasets[0].params.val_fraction: bad value 'big'"),
    ("datasets: [{name: digits, image_size: 16}]", "datasets: [{name: fashion_mnist, params: {train_size: 0}}]",
     "datasets[0].params.train_size: bad value 0; allowed: an integer >= 1"),
    ("image_size: 16", "image_size: 16, params: {train_size: 100}", "datasets[0].params.train_size: unknown"),
    ("name: resnet18,", "name: resnet181,", "backbones[0].name: unknown backbone 'resnet181'"),
    ("evaluations: [knn]", "evaluations: [{name: knn, params: {kk: 3}}]", "evaluations[0].params.kk: unknown key (did you mean 'k'?)"),
    ("evaluations: [knn]", "evaluations: [{name: knn, params: {k: many}}]", "evaluations[0].params.k: bad value 'many'"),
    ("evaluations: [knn]", "evaluations: [knnn]", "evaluations[0].name: unknown evaluation 'knnn'"),
    ("epochs: 1,", "epochs: -1,", "pretrain.epochs: bad value -1"),
    ("batch_size: 64", "batch_size: 64, amp: fp8", "pretrain.amp: bad value 'fp8'; allowed: one of auto, bf16, fp16, off"),
    ("batch_size: 64", "batch_size: 64, epoch: 3", "pretrain.epoch: unknown key (did you mean 'epochs'?)"),
    ("batch_size: 64", "batch_size: 64, device: tpu", "pretrain.device: bad value 'tpu'"),
    ("name: t", "name: t\nseeds: [0, 0]", "seeds: bad value [0, 0]"),
    ("name: t", "name: t\nseeds: [a]", "seeds[0]: bad value 'a'"),
    ("name: t", "name: t\nplugins: [no_such_plugin_module_xyz]", "plugins[0]: cannot import plugin module 'no_such_plugin_module_xyz'"),
    ("name: t", "name: t\nmodel: byol", "model: unknown key"),
    ("output: {dir: OUTDIR}", "output: {dir: OUTDIR, tables: true}", "output.tables: unknown key (did you mean 'table'?)"),
    ("name: t", "name: t\n  bad: [", "not valid YAML at line"),
]


@pytest.mark.parametrize("old,new,expected", CASES)
def test_malformed_suite(tmp_path, capsys, old, new, expected):
    out = tmp_path / "out"
    assert old in GOOD, old
    path = tmp_path / "suite.yaml"
    path.write_text(GOOD.replace(old, new, 1).replace("OUTDIR", str(out)))
    for cmd in (["validate", str(path)], ["run", str(path)]):
        code = main(cmd)
        err = capsys.readouterr().err.strip()
        assert code == 2
        assert len(err.splitlines()) == 1, err
        assert expected in err, err
        assert "Traceback" not in err
        assert not out.exists()


def test_good_suite_validates(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_text(GOOD.replace("OUTDIR", str(tmp_path / "out")))
    assert main(["validate", str(path)]) == 0
    assert "ok (1 runs x 1 evaluations)" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_missing_and_non_mapping_files(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "suite file not found" in capsys.readouterr().err
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    assert main(["validate", str(p)]) == 2
    assert "top level is list" in capsys.readouterr().err


def test_shipped_suites_validate(capsys):
    from pathlib import Path

    suites = sorted((Path(__file__).resolve().parent.parent / "suites").rglob("*.yaml"))  # not the cwd's
    assert len(suites) >= 2
    # suites/imagenet/ names ~/data/imagenet, which must exist: tests/test_suites.py validates them with a fake one
    for path in [p for p in suites if p.parent.name != "imagenet"]:
        assert main(["validate", str(path)]) == 0, (path, capsys.readouterr().err)
