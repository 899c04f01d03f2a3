"""Every closed set of the core is a registry a plugin file extends with one decorator: a toy of each kind
(tests/toy_plugins/, one file each) is imported, then used for real through the public path, and a bad choice
of it is one error naming the field, the value and the registered names."""
from __future__ import annotations

import json
import pkgutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_SUITE, results_rows
from ssl_bench import registry
from ssl_bench.cli.main import main
from ssl_bench.errors import UnknownNameError, UserError

TOYS = Path(__file__).parent / "toy_plugins"
KINDS = {"metrics": ("toy_metric", "toy_top2"), "table_layouts": ("toy_layout", "toy"),
         "checkpoint_formats": ("toy_format", "toy_nested"), "launchers": ("toy_launcher", "toy_inline"),
         "optimizers": ("toy_optimizer", "toy_sign_sgd")}


@pytest.fixture(scope="module", autouse=True)
def toys():
    """The toy plugin files imported (as a suite's `plugins:` imports them); the registries and sys.modules
    are as they were once this module is done."""
    registry.load_plugins()
    for reg in registry.REGISTRIES.values():
        reg.names()  # each registry's built-ins are registered before the snapshot
    regs = [*registry.REGISTRIES.values(), registry.DATASET_INFO]
    saved = [dict(reg._items) for reg in regs]
    modules = set(sys.modules)
    loaded = {kind: registry.import_plugin_file(TOYS / f"{stem}.py") for kind, (stem, _) in KINDS.items()}
    yield loaded
    for reg, items in zip(regs, saved):
        reg._items = items
    for name in set(sys.modules) - modules:
        if name.startswith(registry.PLUGIN_FILE_PREFIX):
            del sys.modules[name]


def test_each_toy_file_registers_its_kind_and_list_shows_it(capsys):
    for kind, (stem, name) in KINDS.items():
        text = (TOYS / f"{stem}.py").read_text()
        assert text.count("@register_") == 1  # one file, one decorator
        assert name in registry.REGISTRIES[kind].names()
        assert main(["list", kind]) == 0
        listed = capsys.readouterr().out
        assert listed.startswith(f"{kind}:\n")
        line = next(ln for ln in listed.splitlines() if ln.split()[:1] == [name])
        assert len(line.split()) > 1, line  # with its one-line description
    assert main(["list"]) == 0
    everything = capsys.readouterr().out
    for kind in KINDS:
        assert f"\n{kind}:\n" in everything


def test_register_names_are_public():
    import ssl_bench

    for name in ("register_metric", "register_optimizer", "register_checkpoint_format", "register_launcher",
                 "register_table_layout"):
        assert name in ssl_bench.__all__ and callable(getattr(ssl_bench, name))


# --- metrics ------------------------------------------------------------------------------------------------------

def _top_k(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the k largest scores, in %, by sorting each row (float64)."""
    hits = [int(labels[i]) in np.argsort(-scores[i], kind="stable")[:k] for i in range(len(labels))]
    return 100.0 * float(np.mean(hits))


def test_a_linear_probe_selects_on_the_datasets_plugin_metric_and_reports_it():
    from test_knn import _digits, make_context

    from ssl_bench.evalkit.probe import fit_logistic, score, standardize
    from ssl_bench.registry import EVALUATIONS

    x, y = _digits(24)
    ctx = make_context(x, y, metric="toy_top2")  # a dataset whose own metric is the plugin's
    ev = EVALUATIONS.get("linear")(num_l2=3, l2_range=[1e-3, 10.0], max_iter=200)
    rows = {r["metric"]: r for r in ev.evaluate(ctx)}
    assert set(rows) == {"top1", "top5", "toy_top2"}
    extra = rows["toy_top2"]["extra"]
    assert extra["val_metric"] == "toy_top2"  # the L2 strength was chosen on the plugin's metric
    curve = [v for _, v in extra["val_curve"]]
    assert extra["l2"] == max((l2 for l2, v in extra["val_curve"] if v == max(curve)))  # ties: strongest
    # the refit at the chosen strength, scored by an independent top-k on its test scores
    tr, va, te = (ctx.features("digits", s) for s in ("train", "val", "test"))
    tr_x, va_x, te_x = standardize(tr[0], va[0], te[0])
    w, b = fit_logistic(torch.cat([tr_x, va_x]), torch.cat([tr[1], va[1]]), extra["l2"], max_iter=200,
                        num_classes=10)
    s = score(te_x, w, b).double().numpy()
    assert rows["toy_top2"]["value"] == pytest.approx(_top_k(s, te[1].numpy(), 2), abs=1e-9)
    assert rows["top1"]["value"] == pytest.approx(_top_k(s, te[1].numpy(), 1), abs=1e-9)
    assert rows["top1"]["value"] <= rows["toy_top2"]["value"] <= rows["top5"]["value"]


def test_an_unknown_metric_names_the_field_the_value_and_the_registered_ones():
    from ssl_bench.evalkit.probe import probe_metric

    with pytest.raises(UnknownNameError) as exc:
        probe_metric(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), "top_two")
    msg = str(exc.value)
    assert msg.startswith("val_metric: unknown metric 'top_two'") and "toy_top2" in msg and "mean_per_class" in msg


def test_a_dataset_declaring_an_unregistered_metric_is_refused_by_validate(tmp_path):
    from ssl_bench.config.suite import load_suite

    registry.register_dataset("digits_scored_oddly", metric="top_two")(registry.DATASETS.get("digits"))
    path = tmp_path / "odd.yaml"
    path.write_text(TINY_SUITE.format(epochs=1).replace("name: digits,", "name: digits_scored_oddly,"))
    with pytest.raises(UnknownNameError) as exc:
        load_suite(str(path))
    msg = str(exc.value)
    assert msg.startswith("datasets[0].name (dataset 'digits_scored_oddly' declares metric='top_two'): unknown "
                          "metric 'top_two'") and "toy_top2" in msg


# --- optimizers ---------------------------------------------------------------------------------------------------

def test_the_toy_optimizer_trains_one_step():
    from ssl_bench.engine.optim import build_optimizer

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    x = torch.randn(5, 3)
    w0, b0 = model.weight.detach().double().numpy().copy(), model.bias.detach().double().numpy().copy()
    opt = build_optimizer(model, {"optimizer": "toy_sign_sgd", "weight_decay": 0.0}, lr=0.1)
    assert type(opt).__name__ == "SignSGD"
    opt.zero_grad()
    (model(x) ** 2).sum().backward()
    opt.step()
    # loss = sum (x W^T + b)^2: dW = 2 out^T x, db = 2 sum(out); the step is -lr * sign(grad)
    xs = x.double().numpy()
    out = xs @ w0.T + b0
    np.testing.assert_allclose(model.weight.detach().double().numpy(), w0 - 0.1 * np.sign(2 * out.T @ xs), atol=1e-7)
    np.testing.assert_allclose(model.bias.detach().double().numpy(), b0 - 0.1 * np.sign(2 * out.sum(0)), atol=1e-7)


def test_an_unknown_optimizer_in_the_suite_names_the_field(tmp_path):
    from ssl_bench.config.suite import load_suite

    path = tmp_path / "bad.yaml"
    path.write_text(TINY_SUITE.format(epochs=1).replace("warmup_epochs: 1}", "warmup_epochs: 1, optimizer: sign}"))
    with pytest.raises(UserError) as exc:
        load_suite(str(path))
    msg = str(exc.value)
    assert msg.startswith("methods[1].optim.optimizer:") and "'sign'" in msg
    assert all(n in msg for n in ("lars", "sgd", "adamw", "toy_sign_sgd"))


# --- checkpoint formats -------------------------------------------------------------------------------------------

def _tiny_backbone():
    from ssl_bench.create import create_backbone

    return create_backbone("resnet18", in_chans=1, image_size=8, channels=[4, 8, 8, 8], stem_width=4)


def test_a_checkpoint_in_the_toy_format_loads_by_name_and_by_detection(tmp_path):
    from ssl_bench.weights.load import load_encoder

    source = _tiny_backbone()
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    path = tmp_path / "toy.pt"
    torch.save({"toy_encoder": source.state_dict(), "optimizer_step": torch.tensor(7)}, path)
    for fmt in ("toy_nested", "auto"):
        target = _tiny_backbone()
        info = load_encoder(target, path, fmt)
        assert info["checkpoint_format"] == "toy_nested" and info["keys_ignored"] == 1 and info["keys_missing"] == 0
        for k, v in source.state_dict().items():
            assert torch.equal(target.state_dict()[k], v), k
    with pytest.raises(UserError) as exc:
        load_encoder(_tiny_backbone(), path, "toy")
    msg = str(exc.value)
    assert msg.startswith("params.format: bad value 'toy'") and "toy_nested" in msg and "torchvision" in msg


# --- a suite run by the toy launcher with the toy optimizer; its table in the toy layout -------------------------

TOY_SUITE = TINY_SUITE.replace("warmup_epochs: 1}", "warmup_epochs: 1, optimizer: toy_sign_sgd}") \
    .replace("  - {{name: linear, params: {{num_l2: 5}}}}\n", "").replace("table: true", "table: false")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("toy_run")
    suite = base / "toy.yaml"
    plugins = ", ".join(str(TOYS / f"{stem}.py") for stem, _ in KINDS.values())
    suite.write_text(f"plugins: [{plugins}]\n" + TOY_SUITE.format(epochs=1))
    out = base / "out"
    code = main(["run", str(suite), "--out", str(out), "--quiet", "--launcher", "toy_inline"])
    return suite, out, code


def test_the_toy_launcher_runs_the_suite(toy_run, toys):
    suite, out, code = toy_run
    assert code == 0
    assert toys["launchers"].CALLS == [(1, out.resolve())]  # one worker by default (per_run not set)
    rows = results_rows(out)
    assert {(r["method"], r["protocol"], r["metric"]) for r in rows} == \
        {(m, "knn", k) for m in ("random", "byol") for k in ("top1", "top5")}
    assert all(r["status"] == "ok" for r in rows)
    byol = next(r["run_id"] for r in rows if r["method"] == "byol")
    config = json.loads((out / "runs" / byol / "run.json").read_text())["config"]
    assert config["method"] == "byol" and config["optim"]["optimizer"] == "toy_sign_sgd"  # trained by the toy optimizer


def test_the_toy_layout_renders_through_ssl_bench_table(toy_run, capsys):
    _, out, _ = toy_run
    capsys.readouterr()
    assert main(["table", str(out), "--layout", "toy", "--plugins", str(TOYS / "toy_layout.py")]) == 0
    text = capsys.readouterr().out
    assert "Toy: kNN top-1" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert "Digits" in lines[0] and "Top-5" not in text  # one column: the evaluation dataset, top-1 only
    for r in results_rows(out):
        if r["metric"] == "top1":
            row = next(ln for ln in lines if ln.split("|")[1].strip().strip("*") == r["method"])
            assert f"{r['value']:.1f}" in row


def test_unknown_layout_and_launcher_name_the_option_and_the_registered_names(toy_run, tmp_path, capsys):
    suite, out, _ = toy_run
    capsys.readouterr()
    assert main(["table", str(out), "--layout", "toys"]) == 2
    err = capsys.readouterr().err
    assert "--layout: unknown table layout 'toys'" in err and all(n in err for n in ("toy", "linear", "compute"))
    fresh = tmp_path / "never"
    assert main(["run", str(suite), "--out", str(fresh), "--launcher", "toy_inlne"]) == 2
    err = capsys.readouterr().err
    assert "--launcher: unknown launcher 'toy_inlne'" in err and all(n in err for n in ("none", "local", "slurm"))
    assert "did you mean 'toy_inline'" in err
    assert not fresh.exists()  # refused before anything is written


# --- methods/ is a plugin folder like evaluations/ -----------------------------------------------------------------

def test_every_file_in_methods_and_evaluations_is_imported_without_a_list():
    import ssl_bench.evaluations
    import ssl_bench.methods

    registry.load_plugins()
    for pkg in (ssl_bench.methods, ssl_bench.evaluations):
        mods = [m.name for m in pkgutil.iter_modules(pkg.__path__)]
        assert mods and all(f"{pkg.__name__}.{m}" in sys.modules for m in mods)
    registered = {getattr(cls, "__module__", "") for _, cls in registry.METHODS.items()}
    assert "ssl_bench.methods.byol" in registered and "ssl_bench.methods.simclr" in registered
