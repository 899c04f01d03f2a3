"""Adding a method as a user would: a plugin file loaded by a suite's `plugins:`, and an installed package's
entry point, both with no edit to ssl-bench."""
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssl_bench.cli.main import main
from ssl_bench.registry import import_plugin_file
from ssl_bench.config.suite import load_suite
from test_simclr import mean, train_on_digits

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

TINY_SUITE = """
name: my_plugin
plugins: [barlow_twins]
seeds: [0]
datasets: [{name: digits, image_size: 8, params: {test_fraction: 0.6}}]  # 540 train images
backbones: [{name: resnet18, kwargs: {channels: [4, 8, 8, 8], stem_width: 4}}]
methods:
  - name: barlow_twins
    params: {proj_dims: [32, 32, 32]}
pretrain: {epochs: 1, batch_size: 64, amp: "off", num_workers: 0}
evaluations: [{name: knn, params: {k: 10}}]
output: {table: true, report: false}
"""


@pytest.mark.slow
def test_example_plugin_runs_from_a_suite_end_to_end(tmp_path, capsys):
    """A user's folder: their method file next to their suite, imported by its path."""
    shutil.copy(EXAMPLES / "barlow_twins.py", tmp_path / "barlow_twins.py")
    suite = tmp_path / "suite.yaml"
    suite.write_text(TINY_SUITE)
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert records and {r["method"] for r in records} == {"barlow_twins"}
    for r in records:
        assert r["status"] == "ok" and 0 <= r["value"] <= 100 and r["protocol"] == "knn"
        assert r["method_params"] == {"proj_dims": [32, 32, 32], "lambd": 0.0051}  # the values actually used
    assert "barlow_twins" in capsys.readouterr().out  # in the printed table


def test_shipped_example_suite_validates():
    suite = load_suite(EXAMPLES / "example_suite.yaml")
    assert suite.plugins == ["barlow_twins"]
    spec = next(m for m in suite.methods if m.name == "barlow_twins")
    assert spec.params["proj_dims"] == [512, 512, 512]
    assert len(spec.views) == 2 and spec.views[1]["solarize_p"] == 0.2


def test_unknown_plugin_module_is_a_one_line_user_error(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(TINY_SUITE.replace("plugins: [barlow_twins]", "plugins: [no_such_plugin_module]"))
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert "plugins[0]" in err and "no_such_plugin_module" in err and len(err.splitlines()) == 1


def _example_module(monkeypatch):
    """The example file, imported the way a suite imports it (by path; a later load of a same-named plugin
    file replaces the earlier registration instead of clashing)."""
    return import_plugin_file(EXAMPLES / "barlow_twins.py")


def test_barlow_twins_loss_matches_the_formula(monkeypatch):
    barlow_twins = _example_module(monkeypatch)

    g = torch.Generator().manual_seed(0)
    n, d, lambd = 6, 4, 0.3
    z1, z2 = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)

    def standardized(z, j):  # column j over the batch, biased variance, BN's eps
        col = [float(z[b, j]) for b in range(n)]
        mu = sum(col) / n
        sd = math.sqrt(sum((x - mu) ** 2 for x in col) / n + 1e-5)
        return [(x - mu) / sd for x in col]

    expected = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a * b for a, b in zip(standardized(z1, i), standardized(z2, j))) / n
            expected += (1 - c) ** 2 if i == j else lambd * c ** 2
    assert abs(barlow_twins.barlow_twins_loss(z1, z2, lambd).item() - expected) < 1e-9


@pytest.mark.slow
def test_barlow_twins_loss_decreases_on_digits(monkeypatch):
    barlow_twins = _example_module(monkeypatch)

    losses = train_on_digits(barlow_twins.BarlowTwins, steps=30, lr=2.0, proj_dims=[64, 64, 64])
    # A constant embedding scores D = 64 (c = 0); decorrelated, invariant features score near 0.
    assert mean(losses[-5:]) < 0.5 * mean(losses[:5]), losses
    assert mean(losses[-5:]) < 64 / 4, losses


ENTRY_POINT_CHECK = """
import torch
from ssl_bench.cli.main import main
from ssl_bench.registry import METHODS

main(["list", "methods"])
cls = METHODS.get("simsiam")
torch.manual_seed(0)
backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
backbone.num_features = 8
m = cls(backbone, proj_dim=16, pred_hidden_dim=8)
loss = m([torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)])["loss"]
loss.backward()
assert -1 <= loss.item() <= 1 and all(p.grad is not None for p in m.predictor.parameters())
print("simsiam step ok")
"""


def _install_example_package(tmp_path: Path) -> Path:
    """pip install --target a private folder (offline); where the venv has no setuptools to build with
    (Python >= 3.12 venvs), lay out what pip would: the package plus a dist-info with the pyproject's entry points."""
    src, site = tmp_path / "src", tmp_path / "site"
    shutil.copytree(EXAMPLES / "entry_point_plugin", src)  # pip builds in the source folder
    if importlib.util.find_spec("setuptools") is not None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                        "--quiet", "--target", str(site), str(src)], check=True, capture_output=True, timeout=300)
        return site
    import tomllib

    project = tomllib.loads((src / "pyproject.toml").read_text())["project"]
    shutil.copytree(src / "ssl_bench_simsiam", site / "ssl_bench_simsiam")
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, eps in project["entry-points"].items():
        lines += [f"[{group}]", *(f"{k} = {v}" for k, v in eps.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


@pytest.mark.slow
def test_entry_point_plugin_from_an_installed_package(tmp_path):
    """pip-install the example package into a private folder; a fresh process with that folder on its path
    sees the method through the `ssl_bench.plugins` entry point (load_plugins runs once per process)."""
    site = _install_example_package(tmp_path)
    assert (site / "ssl_bench_simsiam").is_dir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", ENTRY_POINT_CHECK], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert {"simsiam", "byol", "simclr", "moco_v2", "moco_v3", "random", "supervised"} <= listed, done.stdout
    assert "simsiam step ok" in done.stdout
    from ssl_bench.registry import METHODS

    assert "simsiam" not in METHODS.names()  # this process lacks the package: it is the package that adds it
