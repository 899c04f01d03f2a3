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
plugins: [align_uniform]
seeds: [0]
datasets: [{name: digits, image_size: 8, params: {test_fraction: 0.6}}]  # 540 train images
backbones: [{name: resnet18, kwargs: {channels: [4, 8, 8, 8], stem_width: 4}}]
methods:
  - name: align_uniform
    params: {proj_dims: [32, 16]}
pretrain: {epochs: 1, batch_size: 64, amp: "off", num_workers: 0}
evaluations: [{name: knn, params: {k: 10}}]
output: {table: true, report: false}
"""


@pytest.mark.slow
def test_example_plugin_runs_from_a_suite_end_to_end(tmp_path, capsys):
    """A user's folder: their method file next to their suite, imported by its path."""
    shutil.copy(EXAMPLES / "align_uniform.py", tmp_path / "align_uniform.py")
    suite = tmp_path / "suite.yaml"
    suite.write_text(TINY_SUITE)
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert records and {r["method"] for r in records} == {"align_uniform"}
    for r in records:
        assert r["status"] == "ok" and 0 <= r["value"] <= 100 and r["protocol"] == "knn"
        assert r["method_params"] == {"proj_dims": [32, 16], "lam": 1.0, "alpha": 2.0, "t": 2.0}  # the values actually used
    assert "align_uniform" in capsys.readouterr().out  # in the printed table


def test_shipped_example_suite_validates():
    suite = load_suite(EXAMPLES / "example_suite.yaml")
    assert suite.plugins == ["align_uniform"]
    spec = next(m for m in suite.methods if m.name == "align_uniform")
    assert spec.params["proj_dims"] == [512, 128]
    assert len(spec.views) == 2 and spec.views[1]["crop_scale"] == [0.2, 1.0]


def test_unknown_plugin_module_is_a_one_line_user_error(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(TINY_SUITE.replace("plugins: [align_uniform]", "plugins: [no_such_plugin_module]"))
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert "plugins[0]" in err and "no_such_plugin_module" in err and len(err.splitlines()) == 1


def _example_module():
    """The example file, imported the way a suite imports it (by path; a later load of a same-named plugin
    file replaces the earlier registration instead of clashing)."""
    return import_plugin_file(EXAMPLES / "align_uniform.py")


def test_align_uniform_loss_matches_the_formula():
    """[Wang and Isola eq. 4-5] written out over rows and pairs, on normalized rows."""
    example = _example_module()
    g = torch.Generator().manual_seed(0)
    n, d, lam, t = 6, 4, 0.7, 2.0
    z1, z2 = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)

    def unit(z):
        return [[float(x) / math.sqrt(sum(float(y) ** 2 for y in row)) for x in row] for row in z]

    def sqdist(a, b):
        return sum((x - y) ** 2 for x, y in zip(a, b))

    u1, u2 = unit(z1), unit(z2)
    align = sum(sqdist(a, b) for a, b in zip(u1, u2)) / n  # alpha = 2: the squared distance

    def uniform(u):
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        return math.log(sum(math.exp(-t * sqdist(u[i], u[j])) for i, j in pairs) / len(pairs))

    expected = align + lam * (uniform(u1) + uniform(u2)) / 2
    assert abs(example.align_uniform_loss(z1, z2, lam, 2.0, t).item() - expected) < 1e-9


@pytest.mark.slow
def test_align_uniform_example_trains_on_digits():
    example = _example_module()
    losses = train_on_digits(example.AlignUniform, steps=30, lr=0.5, proj_dims=[64, 32])
    assert mean(losses[-5:]) < mean(losses[:5]) - 0.2, losses
    assert all(math.isfinite(x) for x in losses)


ENTRY_POINT_CHECK = """
import torch
from ssl_bench.cli.main import main
from ssl_bench.registry import METHODS

main(["list", "methods"])
cls = METHODS.get("spectral_contrastive")
torch.manual_seed(0)
backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
backbone.num_features = 8
m = cls(backbone, proj_hidden_dim=16, proj_dim=8)
loss = m([torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)])["loss"]
loss.backward()
assert torch.isfinite(loss) and all(p.grad is not None for p in m.projector.parameters())
print("spectral_contrastive step ok")
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
    shutil.copytree(src / "ssl_bench_spectral", site / "ssl_bench_spectral")
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
    assert (site / "ssl_bench_spectral").is_dir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", ENTRY_POINT_CHECK], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert {"spectral_contrastive", "simsiam", "byol", "simclr", "random", "supervised"} <= listed, done.stdout
    assert "spectral_contrastive step ok" in done.stdout
    from ssl_bench.registry import METHODS

    assert "spectral_contrastive" not in METHODS.names()  # this process lacks the package: the package adds it
