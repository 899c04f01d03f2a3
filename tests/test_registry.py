"""Registry: decorators, unknown names with the closest match, entry points, suite plugins."""
import pytest

from ssl_bench.errors import UnknownNameError
from ssl_bench.registry import EVALUATIONS, METHODS, Registry


def test_builtins_registered():
    assert {"byol", "random", "supervised"} <= set(METHODS.names())
    assert {"knn", "linear"} <= set(EVALUATIONS.names())


def test_unknown_name_lists_known_and_closest():
    with pytest.raises(UnknownNameError) as exc:
        METHODS.get("byl", where="methods[0].name")
    msg = str(exc.value)
    assert msg.startswith("methods[0].name: unknown method 'byl'")
    assert "did you mean 'byol'" in msg and "random" in msg and "supervised" in msg


def test_register_twice_is_an_error():
    reg = Registry("thing")

    @reg.register("a")
    class A:
        pass

    with pytest.raises(ValueError):
        @reg.register("a")
        class B:
            pass


# --- create_*: look up, check params, build ---------------------------------------------------------------------

def test_create_method_checks_params_against_declared_defaults_and_ranges():
    from ssl_bench.create import create_backbone, create_method
    from ssl_bench.errors import UserError

    bb = create_backbone("resnet18", in_chans=1, image_size=8, channels=[4, 8, 8, 8], stem_width=4)
    m = create_method("byol", bb, proj_dim=16, proj_hidden_dim=32, pred_hidden_dim=32)
    assert m.hparams["proj_dim"] == 16 and m.backbone is bb
    with pytest.raises(UserError, match=r"method byol: params\.tau: unknown key \(did you mean 'tau_base'\?\)"):
        create_method("byol", bb, tau=0.9)
    with pytest.raises(UserError, match=r"methods\[2\]\.params\.proj_dim: bad value 0; allowed: an integer >= 1"):
        create_method("byol", bb, where="methods[2]", proj_dim=0)
    with pytest.raises(UnknownNameError, match=r"methods\[0\]\.name: unknown method 'byl'; did you mean 'byol'"):
        create_method("byl", bb, where="methods[0]")


def test_create_evaluation_dataset_and_backbone():
    from ssl_bench.create import create_backbone, create_dataset, create_evaluation
    from ssl_bench.errors import UserError

    knn = create_evaluation("knn", k=5)
    assert knn.params["k"] == 5 and knn.params["temperature"] == 0.07  # declared defaults filled in
    with pytest.raises(UserError, match=r"evaluation knn: params\.k: bad value 0; allowed: an integer >= 1"):
        create_evaluation("knn", k=0)
    with pytest.raises(UnknownNameError, match="did you mean 'knn'"):
        create_evaluation("knm")
    digits = create_dataset("digits", split_seed=1)
    assert digits.num_classes == 10 and create_dataset("digits", split_seed=1) is digits  # loaded once
    with pytest.raises(UserError, match=r"dataset digits: params\.colour: unknown key"):
        create_dataset("digits", colour=True)
    with pytest.raises(UnknownNameError, match="did you mean 'digits'"):
        create_dataset("digts")
    net = create_backbone("resnet18", in_chans=1, image_size=16, channels=[4, 8, 8, 8], stem_width=4)
    assert net.num_features == 8 and net.small_stem
    with pytest.raises(UserError, match="unknown timm model 'resnt18'; closest timm names: .*resnet18"):
        create_backbone("resnt18", in_chans=3, image_size=32)


def test_the_core_builds_through_create_and_never_imports_the_backbone_plugins():
    from pathlib import Path

    import re

    import ssl_bench

    core = Path(ssl_bench.__file__).parent
    for path in core.rglob("*.py"):
        text = path.read_text()
        assert "from .backbones" not in text and "from ..backbones" not in text, path
        if path.name != "create.py":  # nothing looks a plugin up and calls it (a lookup alone may stay)
            assert not re.search(r"(METHODS|EVALUATIONS|DATASETS|BACKBONES)\.get\([^()]*\)\(", text), path
            assert not re.search(r"\bbuilt\.cls\(|\bself\.cls\(", text), path
