"""Issue #13: plugin import safety, entry-point failures, path-safe names, YAML limits and the validation
misses. Every bad suite gives one line naming its field, exit code 2, and no output folder (validate and run)."""
import importlib.machinery
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from ssl_bench import registry
from ssl_bench.cli.main import main
from ssl_bench.errors import DatasetError
from ssl_bench.registry import DATASETS, METHODS, load_plugins

GOOD = """
name: t
datasets: [{name: digits, image_size: 8}]
backbones: [{name: resnet18, kwargs: {channels: [4, 8, 8, 8], stem_width: 4}}]
methods: [{name: byol, params: {proj_hidden_dim: 16, proj_dim: 8, pred_hidden_dim: 16}}]
pretrain: {epochs: 1, batch_size: 64}
evaluations: [{name: knn, params: {k: 10}}]
"""
BYOL = "methods: [{name: byol, params: {proj_hidden_dim: 16, proj_dim: 8, pred_hidden_dim: 16}}]"
BAD_NAMES = ["../../x", "/abs/path", ".hidden", "a/b"]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "suite.yaml").write_text(text)
    return tmp_path / "suite.yaml"


def assert_one_line_error(tmp_path, capsys, text, expected):
    """validate and run both exit 2 with exactly one stderr line containing `expected`; nothing is created."""
    path, out = _write(tmp_path, text), tmp_path / "out"
    for cmd in (["validate", str(path)], ["run", str(path), "--out", str(out)]):
        code = main(cmd)
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
        assert not out.exists()


def _case(old, new, expected):
    assert old in GOOD, old
    return pytest.param(GOOD.replace(old, new, 1), expected, id=expected[:60])


# ---- 1. plugin files are imported by path; the suite's folder never goes on sys.path ------------------------
def test_plugins_never_put_the_suite_folder_on_sys_path(tmp_path, capsys):
    marker = tmp_path / "marker"
    (tmp_path / "sklearn.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    path = _write(tmp_path, GOOD.replace("name: t", "name: t\nplugins: [json]"))
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    assert not marker.exists()
    assert str(tmp_path) not in sys.path
    spec = importlib.machinery.PathFinder.find_spec("sklearn")  # what `import sklearn` would find now
    assert spec is not None and not spec.origin.startswith(str(tmp_path))


@pytest.mark.parametrize("entry", ["my_method_13", "my_method_13.py"])
def test_plugin_file_beside_the_suite_is_imported_by_path(tmp_path, capsys, monkeypatch, entry):
    load_plugins()
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))  # the test's method is gone afterwards
    (tmp_path / "my_method_13.py").write_text(
        "from ssl_bench.methods.baselines import RandomInit\nfrom ssl_bench.registry import register_method\n"
        "@register_method('my_method_13')\nclass Mine(RandomInit):\n    '''mine'''\n")
    text = GOOD.replace("name: t", f"name: t\nplugins: [{entry}]").replace(BYOL, "methods: [my_method_13]")
    assert main(["validate", str(_write(tmp_path, text))]) == 0, capsys.readouterr().err
    assert "my_method_13" in METHODS and "my_method_13" not in sys.modules


@pytest.mark.parametrize("entry,expected", [
    ("missing_13.py", "plugins[0]: plugin file"),
    ("../x", "plugins[0]: bad value '../x'"),
    ("broken_13", "plugins[0]: plugin file"),
])
def test_bad_plugin_entries(tmp_path, capsys, entry, expected):
    (tmp_path / "broken_13.py").write_text("raise RuntimeError('boom in plugin')\n")
    assert_one_line_error(tmp_path, capsys, GOOD.replace("name: t", f"name: t\nplugins: ['{entry}']"), expected)


# ---- 2. entry points: a broken one is one warning line; the built-ins and the others still load ----------
EVENTS: list = []


def _fake_entry_point(name, fn):
    def load():
        EVENTS.append(f"entry point {name}")
        return fn()

    return SimpleNamespace(name=name, value=f"fake_module_{name}:plugin", load=load)


def _broken():
    raise ImportError("boom from a broken plugin")


def _good():
    from ssl_bench.methods.baselines import RandomInit

    registry.register_method("ep_probe_13")(type("Probe", (RandomInit,), {"__doc__": "probe"}))


@pytest.fixture
def fake_entry_points(monkeypatch):
    """load_plugins runs again (in this process) against two fake entry points: a broken one, then a good one."""
    load_plugins()  # the real built-ins, registered before the registries are swapped for copies
    for reg in registry.REGISTRIES.values():
        monkeypatch.setattr(reg, "_items", dict(reg._items))
    monkeypatch.setattr(registry, "broken_entry_points", {})
    monkeypatch.setattr(registry, "_state", "no")
    eps = [_fake_entry_point("broken13", _broken), _fake_entry_point("good13", _good)]
    monkeypatch.setattr(registry.metadata, "entry_points",
                        lambda group: eps if group == registry.ENTRY_POINT_GROUP else [])
    real_import = registry.importlib.import_module
    monkeypatch.setattr(registry.importlib, "import_module", lambda m: EVENTS.append(m) or real_import(m))
    EVENTS.clear()


def test_broken_entry_point_is_one_warning_and_the_rest_loads(tmp_path, capsys, fake_entry_points):
    assert main(["validate", str(_write(tmp_path, GOOD))]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("warning: entry point 'broken13' (fake_module_broken13:plugin)"), err
    assert "ImportError: boom from a broken plugin" in err[0]
    ours = [e for e in EVENTS if e in registry.BUILTIN_MODULES or e.startswith("entry point")]
    assert ours == [*registry.BUILTIN_MODULES, "entry point broken13", "entry point good13"]  # built-ins first
    assert "ep_probe_13" in METHODS  # the good entry point after the broken one is registered


def test_unknown_name_mentions_the_broken_entry_point(tmp_path, capsys, fake_entry_points):
    path = _write(tmp_path, GOOD.replace(BYOL, "methods: [simsiam13]"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("warning: entry point 'broken13'"), err
    assert "methods[0].name: unknown method 'simsiam13'" in err[1] and "failed to load: broken13" in err[1]


def test_failed_builtin_import_is_retried(monkeypatch):
    load_plugins()
    monkeypatch.setattr(registry, "_state", "no")
    monkeypatch.setattr(registry, "BUILTIN_MODULES", ("no_such_builtin_module_13",))
    for _ in range(2):  # not marked loaded: the next lookup fails the same way instead of finding nothing
        with pytest.raises(ModuleNotFoundError):
            load_plugins()
        assert registry._state == "no"


# ---- 3. names that become path components -----------------------------------------------------------------
SAFE_NAME_CASES = [
    *[_case("name: t", f"name: '{bad}'", f"name: bad value {bad!r}; allowed: a name of") for bad in BAD_NAMES],
    *[_case("pred_hidden_dim: 16}}", f"pred_hidden_dim: 16}}, label: '{bad}'}}",
            f"methods[0].label: bad value {bad!r}") for bad in BAD_NAMES],
    *[_case("stem_width: 4}}", f"stem_width: 4}}, label: '{bad}'}}", f"backbones[0].label: bad value {bad!r}")
      for bad in BAD_NAMES],
    _case("params: {k: 10}", "params: {k: 10, dataset: '../x'}", "evaluations[0].params.dataset: unknown dataset"),
]


@pytest.mark.parametrize("text,expected", SAFE_NAME_CASES)
def test_unsafe_names(tmp_path, capsys, text, expected):
    assert_one_line_error(tmp_path, capsys, text, expected)


def test_unsafe_registered_dataset_name(tmp_path, capsys, monkeypatch):
    load_plugins()
    monkeypatch.setitem(DATASETS._items, "../evil", DATASETS.get("digits"))  # as a plugin could register it
    text = GOOD.replace("{name: digits, image_size: 8}", "{name: ../evil, image_size: 8}")
    assert_one_line_error(tmp_path, capsys, text, "datasets[0].name: bad value '../evil'")


# ---- 4. YAML: duplicate keys, alias bombs, huge files --------------------------------------------------------
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, n in zip("abcdefgh", "bcdefghi"))  # 9**9 strings


@pytest.mark.parametrize("text,expected", [
    (GOOD.replace("name: t", "name: t\nname: u"), "not valid YAML at line 3, column 1: duplicate key 'name' "
                                                  "(first at line 2, column 1)"),
    (GOOD.replace("batch_size: 64", "batch_size: 64, epochs: 2"),
     "duplicate key 'epochs' (first at line 6, column 12)"),
    ("a: &a [1, *a]\n", "not valid YAML at line 1"),
])
def test_yaml_duplicate_keys_and_recursion(tmp_path, capsys, text, expected):
    assert_one_line_error(tmp_path, capsys, text, expected)


def test_yaml_merge_keys_may_override(tmp_path, capsys):
    text = GOOD.replace("evaluations: [{name: knn, params: {k: 10}}]",
                        "evaluations: [&e {name: knn, params: {k: 10}}, {<<: *e, params: {k: 5}}]")
    assert main(["validate", str(_write(tmp_path, text))]) == 0, capsys.readouterr().err


def test_yaml_alias_bomb_is_refused_fast(tmp_path, capsys):
    start = time.perf_counter()
    assert_one_line_error(tmp_path, capsys, BOMB, "aliases expand to more than 100000 YAML nodes")
    assert time.perf_counter() - start < 1.0


def test_huge_suite_file(tmp_path, capsys):
    assert_one_line_error(tmp_path, capsys, GOOD + "#" * (1 << 20) + "\n", "allowed: a suite file of at most")


# ---- 5. validation misses -------------------------------------------------------------------------------------
MISS_CASES = [
    _case("proj_dim: 8", "proj_dim: 0", "methods[0].params.proj_dim: bad value 0; allowed: an integer >= 1"),
    _case("proj_hidden_dim: 16", "proj_hidden_dim: -4", "methods[0].params.proj_hidden_dim: bad value -4"),
    _case("pred_hidden_dim: 16", "pred_hidden_dim: 0", "methods[0].params.pred_hidden_dim: bad value 0"),
    _case(BYOL, "methods: [{name: simclr, params: {proj_dim: 0}}]", "methods[0].params.proj_dim: bad value 0"),
    _case(BYOL, "methods: [{name: moco_v2, params: {proj_hidden_dim: 0}}]", "methods[0].params.proj_hidden_dim"),
    _case(BYOL, "methods: [{name: moco_v3, params: {pred_hidden_dim: 0}}]", "methods[0].params.pred_hidden_dim"),
    _case(BYOL, "methods: [{name: simclr, params: {temperature: 0}}]",
          "methods[0].params.temperature: bad value 0.0; allowed: a finite number > 0"),
    _case(BYOL, "methods: [{name: simclr, params: {temperature: .inf}}]",
          "methods[0].params.temperature: bad value inf; allowed: a finite number > 0"),
    _case(BYOL, "methods: [{name: moco_v2, params: {temperature: -0.2}}]", "methods[0].params.temperature"),
    _case(BYOL, "methods: [{name: moco_v3, params: {temperature: .inf}}]", "methods[0].params.temperature"),
    _case("params: {k: 10}", "params: {k: 10, temperature: 0}",
          "evaluations[0].params.temperature: bad value 0.0; allowed: a finite number > 0"),
    _case("params: {k: 10}", "params: {k: 10, temperature: .inf}", "evaluations[0].params.temperature: bad value inf"),
    _case("channels: [4, 8, 8, 8]", "chanels: [4, 8, 8, 8]",
          "backbones[0].kwargs: timm model 'resnet18' rejected its keyword arguments ['chanels', 'stem_width']"),
    _case("params: {k: 10}", "params: {k: 0}", "evaluations[0].params.k: bad value 0; allowed: an integer >= 1"),
    _case("channels: [4, 8, 8, 8]", "channels: [4, 8, 8]",
          "backbones[0].kwargs.channels: bad value [4, 8, 8]; allowed: a list of 4 widths"),
    _case("channels: [4, 8, 8, 8]", "channels: [4, 0, 8, 8]", "backbones[0].kwargs: timm model 'resnet18' gets a "
                                                               "zero-sized layer"),
    _case("batch_size: 64", "batch_size: 2048", "pretrain.batch_size: bad value 2048; allowed: an integer <= 1294 "
                                                "(the train split of datasets[0] 'digits' has 1294 images)"),
    _case("image_size: 8}", "image_size: 8, params: {val_fraction: 1.5}}",
          "datasets[0].params.val_fraction: bad value 1.5"),
    _case("evaluations: [{name: knn, params: {k: 10}}]",
          "evaluations: [{name: semi_supervised, params: {subset_file: no_such_subset_13.txt}}]",
          "evaluations[0].params.subset_file: bad value 'no_such_subset_13.txt'"),
    _case("datasets: [{name: digits, image_size: 8}]", "datasets: [{name: digits, image_size: 8}, digits]",
          "datasets[1].name: bad value 'digits'; allowed: a dataset not listed before (datasets[0]"),
    _case("evaluations: [{name: knn, params: {k: 10}}]", "evaluations: [knn, {name: knn, params: {k: 200}}]",
          "evaluations[1]: bad value 'knn'; allowed: an evaluation not listed before (evaluations[0]"),
    _case("epochs: 1,", "epochs: 0,", "pretrain.epochs: bad value 0; allowed: an integer in [1, 100000] for the "
                                      "trainable method 'byol'"),
    _case("pred_hidden_dim: 16}}", "pred_hidden_dim: 16}, epochs: 0}", "methods[0].epochs: bad value 0"),
]


@pytest.mark.parametrize("text,expected", MISS_CASES)
def test_validation_misses(tmp_path, capsys, text, expected):
    assert_one_line_error(tmp_path, capsys, text, expected)


def test_plugin_method_declares_its_ranges(tmp_path, capsys):
    """examples/align_uniform.py declares `param_ranges`: a list of widths is checked element by element."""
    shutil.copy(EXAMPLES / "align_uniform.py", tmp_path / "align_uniform.py")
    text = GOOD.replace("name: t", "name: t\nplugins: [align_uniform]").replace(
        BYOL, "methods: [{name: align_uniform, params: {proj_dims: [32, 0]}}]")
    assert_one_line_error(tmp_path, capsys, text, "methods[0].params.proj_dims[1]: bad value 0; allowed: an integer")


def test_untrained_baseline_takes_zero_epochs(tmp_path, capsys):
    text = GOOD.replace(BYOL, "methods: [random]").replace("epochs: 1,", "epochs: 0,")
    assert main(["validate", str(_write(tmp_path, text))]) == 0, capsys.readouterr().err


def _png_folder(base: Path, classes: dict[str, int]) -> Path:
    for cls, count in classes.items():
        (base / cls).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(np.full((6, 6, 3), 40 * i, dtype=np.uint8)).save(base / cls / f"{i}.png")
    return base


def _folder_suite(path: Path) -> str:
    return GOOD.replace("{name: digits, image_size: 8}", f"{{name: image_folder, image_size: 8, params: "
                                                         f"{{path: '{path}', load_size: 8}}}}")


@pytest.mark.parametrize("classes,expected", [
    ({"cat": 3, "dog": 0}, "datasets[0].params.path: class folder '{base}/dog' holds no images"),
    ({"cat": 3}, "datasets[0].params.path: '{base}' has one class folder ('cat'); allowed: at least 2"),
])
def test_image_folder_empty_class_or_one_class(tmp_path, capsys, classes, expected):
    base = _png_folder(tmp_path / "imgs", classes)
    assert_one_line_error(tmp_path, capsys, _folder_suite(base), expected.format(base=base))
    _png_folder(tmp_path / "good", {"cat": 3, "dog": 3})
    assert main(["validate", str(_write(tmp_path, _folder_suite(tmp_path / "good")))]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("content", [b"not a png at all", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"])
def test_corrupt_image_names_the_file(tmp_path, content):
    from ssl_bench.data.decode import decode_checked

    bad = tmp_path / "broken.png"
    bad.write_bytes(content)
    with pytest.raises(DatasetError, match=r"image '.*broken\.png' cannot be decoded \("):
        decode_checked(str(bad), 8)
