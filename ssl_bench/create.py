"""The one way to build a plugin, timm-style: `create_method`, `create_backbone`, `create_evaluation`,
`create_dataset`.

Each looks its name up in the registry (an unknown name is answered with the known ones and the closest), checks
the parameters against what the plugin declares (its `defaults`, and `param_ranges` where declared, through
validate.override: unknown keys, wrong types and out-of-range values are one-line UserErrors) and builds. The core
builds every plugin through these; `where` is the suite field of the entry (e.g. "methods[0]") for messages.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ssl_bench import validate as v
from ssl_bench.registry import BACKBONES, DATASETS, EVALUATIONS, METHODS

TIMM = "timm"  # the backbone adapter that takes any timm model name


def _name_field(where: str | None) -> str | None:
    return f"{where}.name" if where else None


def _params_field(kind: str, name: str, where: str | None) -> str:
    return f"{where}.params" if where else f"{kind} {name}: params"


def checked_params(plugin: Any, params: dict[str, Any], field: str) -> dict[str, Any]:
    """The plugin's declared defaults overridden by `params`, each checked (validate.override)."""
    return v.override(getattr(plugin, "defaults", {}), params, field, getattr(plugin, "param_ranges", None))


def create_method(name: str, backbone: nn.Module, num_classes: int | None = None, *, where: str | None = None,
                  **params: Any) -> nn.Module:
    """Method `name` with its heads on `backbone`; `params` override its declared hyperparameters."""
    cls = METHODS.get(name, where=_name_field(where))
    return cls(backbone, num_classes=num_classes, **checked_params(cls, params, _params_field("method", name, where)))


def create_backbone(name: str, *, in_chans: int, image_size: int, small_stem: bool | str = "auto",
                    where: str | None = None, **kwargs: Any) -> nn.Module:
    """A registered backbone, or else any timm model name (through the `timm` adapter, which names the closest
    timm models when it does not know `name`). The result exposes `num_features`."""
    if name != TIMM and name in BACKBONES:
        fn = BACKBONES.get(name)
        if getattr(fn, "defaults", None) is not None:  # a plugin that declares its keyword arguments
            kwargs = checked_params(fn, kwargs, f"{where}.kwargs" if where else f"backbone {name}: kwargs")
        return fn(in_chans=in_chans, image_size=image_size, small_stem=small_stem, **kwargs)
    return BACKBONES.get(TIMM, where=_name_field(where))(name, in_chans=in_chans, image_size=image_size,
                                                         small_stem=small_stem, **kwargs)


def create_evaluation(name: str, *, where: str | None = None, **params: Any) -> Any:
    """Evaluation `name` with its declared defaults overridden by `params`; its own range checks run here too."""
    cls = EVALUATIONS.get(name, where=_name_field(where))
    return cls(**checked_params(cls, params, _params_field("evaluation", name, where)))


def create_dataset(name: str, root: str | None = None, download: bool = False, *, where: str | None = None,
                   **params: Any) -> Any:
    """Dataset `name` (a DatasetBundle with its deterministic splits), loaded once per process; `params` override
    the loader's keyword defaults. A dataset missing offline raises DatasetUnavailableError saying where to put it."""
    from ssl_bench.data import datasets as data  # torch-heavy, and imports the built-in loaders

    fn = DATASETS.get(name, where=_name_field(where))
    params = v.override(data.dataset_params(name), params, _params_field("dataset", name, where))
    return data.load_registered(name, fn, root, download, params)


def check_backbone_name(name: str, field: str) -> None:
    """Validation: a registered backbone or any timm model name; else the known names and the closest."""
    import difflib

    import timm

    from ssl_bench.errors import UserError

    if name in BACKBONES or name in timm.list_models():
        return
    close = difflib.get_close_matches(name, timm.list_models() + BACKBONES.names(), n=3)
    raise UserError(f"{field}: unknown backbone '{name}'; allowed: a registered backbone "
                    f"({', '.join(BACKBONES.names())}) or a timm model name; closest: {', '.join(close) or '(none)'}")


def check_backbone_build(name: str, kwargs: dict, small_stem: bool | str, field: str,
                         inputs: list[tuple[int, str]] | None = None) -> None:
    """Validation: build a timm backbone on the meta device (no memory, no download, ~0.1 s), so that keyword
    arguments timm rejects fail now, naming `field` (the suite's backbones[i].kwargs).

    `inputs`: (image size, "datasets[j] 'name'") of each image size the suite trains at; the backbone is built
    for each (timm models with a fixed input size take it) and run on a meta batch of that size, which must
    give (batch, num_features). Without them it is built at 32 px and not run."""
    import warnings

    import torch

    if name != TIMM and name in BACKBONES:  # a plugin backbone may not support the meta device: built at run time
        return
    kwargs = {**kwargs, "pretrained": False}  # weights are not needed to check the architecture
    for size, where in inputs or [(32, None)]:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # e.g. "initializing zero-element tensors": one line on stderr only
            net = _meta_build(name, kwargs, small_stem, size, where, field)
            _check_stage_count(name, kwargs, net, field)
            if where is not None:
                _check_forward(net, name, size, where, field)


def _meta_build(name: str, kwargs: dict, small_stem: bool | str, size: int, where: str | None,
                field: str) -> nn.Module:
    from ssl_bench.errors import UserError

    at = f" for the {size} px images of {where}" if where else ""
    try:
        net = create_backbone(name, in_chans=3, image_size=size, small_stem=small_stem, **kwargs)
    except Exception as exc:  # timm raises TypeError, ValueError, AssertionError, ... for bad arguments
        msg = str(exc) if isinstance(exc, UserError) else \
            f"timm model '{name}' cannot be built with these kwargs{at}: {type(exc).__name__}: {exc}"
        raise UserError(f"{field}: {msg}; allowed: keyword arguments of timm.create_model('{name}')".replace(
            "\n", " ")) from None
    empty = [n for n, p in net.named_parameters() if p.numel() == 0]
    if empty:
        raise UserError(f"{field}: timm model '{name}' gets a zero-sized layer ({empty[0]}){at}; allowed: widths "
                        ">= 1 (and for a ViT, a patch_size at most the image size)")
    return net


def _check_forward(net: nn.Module, name: str, size: int, where: str, field: str) -> None:
    """A meta batch of the run's image size through the backbone: (2, num_features) or a one-line error naming
    the backbone (its field without `.kwargs`), the dataset and what would fit."""
    import torch

    from ssl_bench.errors import UserError

    backbone = field.removesuffix(".kwargs")
    try:
        out = net(torch.zeros(2, 3, size, size))
    except Exception as exc:  # e.g. timm's "Input height (32) doesn't match model (224)"
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{backbone}: '{name}' cannot take the {size}x{size} images of {where} "
                        f"({type(exc).__name__}: {first}); allowed: kwargs that fit {size} px (leave img_size out: "
                        f"the suite's image size is passed to timm models that take one) or another "
                        f"{where.split(' ')[0]}.image_size") from None
    if tuple(out.shape) != (2, net.num_features):
        raise UserError(f"{backbone}: '{name}' gives features of shape {tuple(out.shape)} for a batch of 2 "
                        f"{size} px images of {where}; allowed: a backbone whose forward gives (batch, "
                        f"num_features={net.num_features})")


def _check_stage_count(name: str, kwargs: dict, net: object, field: str) -> None:
    """timm's ResNet zips `channels` with its stage depths, silently dropping or ignoring extra entries."""
    import timm
    import torch

    from ssl_bench.errors import UserError

    channels = kwargs.get("channels")
    if channels is None or not isinstance(net, timm.models.resnet.ResNet):
        return
    if "layers" in kwargs:
        stages = len(kwargs["layers"])
    else:
        with torch.device("meta"):
            stages = len(timm.create_model(name, pretrained=False, num_classes=0).feature_info) - 1  # minus stem
    if not isinstance(channels, (list, tuple)) or len(channels) != stages:
        raise UserError(f"{field}.channels: bad value {channels!r}; allowed: a list of {stages} widths, one per "
                        f"stage of {name}")
