"""`ssl-bench list` (issue 27 item 7): every registered plugin on one line with a description, and
`ssl-bench list KIND NAME` showing the parameters, defaults and the values validation allows."""
from __future__ import annotations

import re

import pytest

from ssl_bench.cli.main import main
from ssl_bench.config.suite_yaml import read_suite_yaml
from ssl_bench.registry import REGISTRIES

ENTRY = re.compile(r"^  (\S+) +(.*)$")


def listed(capsys, *argv: str) -> str:
    assert main(["list", *argv]) == 0
    return capsys.readouterr().out


PLUGIN_KINDS = ("methods", "backbones", "evaluations", "datasets", "loggers")


def test_every_entry_of_every_kind_has_a_one_line_description(capsys):
    out = listed(capsys)
    sections: dict[str, dict[str, str]] = {}
    kind = None
    for line in out.splitlines():
        if re.fullmatch(r"[a-z_]+:", line):
            kind = line[:-1]
            sections[kind] = {}
        elif (m := ENTRY.match(line)) and not line.startswith("  (") and kind:
            sections[kind][m.group(1)] = m.group(2)
    assert list(sections) == list(REGISTRIES)
    for kind, reg in REGISTRIES.items():
        assert sorted(sections[kind]) == reg.names(), kind  # nothing left out, nothing invented
        for name, text in sections[kind].items():
            words = 4 if kind in PLUGIN_KINDS else 1  # extension registries (metrics, ...) may name it shortly
            assert len(text.split()) >= words, (kind, name, text)  # a sentence, not an empty cell
            assert len(text) <= 150, (kind, name, text)  # one short line
    for name in ("byol", "transfer", "cifar10", "cifar100", "image_folder"):  # had none or a cut-off one
        assert any(name in entries for entries in sections.values())


def param_lines(out: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in map(ENTRY.match, out.splitlines()) if m}


def test_list_one_method_shows_every_parameter_with_default_and_range(capsys):
    from ssl_bench.methods.byol import BYOL

    out = listed(capsys, "methods", "byol")
    assert out.splitlines()[0].startswith("byol (method")
    params = param_lines(out)
    assert list(params) == list(BYOL.defaults)
    for key, default in BYOL.defaults.items():
        spelled = str(default).lower() if isinstance(default, bool) else str(default)
        assert params[key].startswith(f"default {spelled} "), (key, params[key])
    assert params["tau_base"].endswith("allowed: a finite number >= 0 and <= 1")
    assert params["proj_dim"].endswith("allowed: an integer >= 1")
    assert params["head_last_bias"].endswith("allowed: true or false")
    assert "base_lr 0.45" in out and "byol-1000ep" in out  # optim defaults and presets


@pytest.mark.parametrize("key,bad", [("tau_base", 1.5), ("proj_dim", 0)])
def test_the_listed_range_is_the_one_validation_enforces(key, bad, tiny_suite, capsys):
    """Where `list` says what is allowed, an out-of-range value in a suite is refused with the same words."""
    path = tiny_suite()
    assert read_suite_yaml(path)["methods"][1]["name"] == "byol"
    allowed = param_lines(listed(capsys, "methods", "byol"))[key].split("allowed: ", 1)[1]
    assert main(["validate", path, f"methods[1].params.{key}={bad}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: methods[1].params.") and err.endswith(f"allowed: {allowed}"), err


def test_list_a_dataset_and_an_evaluation_show_their_keyword_defaults(capsys):
    from ssl_bench.data.datasets import dataset_params

    params = param_lines(listed(capsys, "datasets", "image_folder"))
    assert list(params) == list(dataset_params("image_folder"))
    assert params["path"].startswith("default null ")
    from ssl_bench.evaluations.knn import KNNEvaluation

    params = param_lines(listed(capsys, "evaluations", "knn"))
    assert list(params) == list(KNNEvaluation.defaults)


def test_list_an_unknown_name_is_one_line_with_the_closest(capsys):
    assert main(["list", "methods", "byl"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown method 'byl'" in err and "did you mean 'byol'" in err
