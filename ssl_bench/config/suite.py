"""Suite YAML -> a typed, validated Suite. Nothing runs and nothing is written before this passes."""
from __future__ import annotations

import copy
import math
import os
import sys
from pathlib import Path
from typing import Any

from ssl_bench.config import budget as budgets
from ssl_bench.config import checks
from ssl_bench import validate as v
from ssl_bench.config.monitors import parse_knn_monitor, parse_online_linear
from ssl_bench.errors import UserError
from ssl_bench.config.launcher import check_launcher
from ssl_bench.method import OPTIM_DEFAULTS
from ssl_bench.presets import apply_preset, unset_preset_warning
from ssl_bench.registry import DATASETS, EVALUATIONS, METHODS, import_plugins
from ssl_bench.config.spec import BackboneSpec, DatasetSpec, EvalSpec, MethodSpec, Suite
from ssl_bench.config.suite_yaml import read_suite_yaml
from ssl_bench.engine.loggers import check_loggers
from ssl_bench.engine.optim import OPTIMIZERS

__all__ = ["Suite", "MethodSpec", "BackboneSpec", "DatasetSpec", "EvalSpec", "parse_suite", "load_suite",
           "read_suite_yaml"]

TOP_KEYS = ["name", "description", "plugins", "seeds", "data_root", "download", "methods", "backbones", "launcher",
            "datasets", "pretrain", "evaluations", "output"]
PRETRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 100, "batch_size": 256, "amp": "auto", "channels_last": True, "device": "auto",
    "num_workers": 4, "compile": False, "sync_bn": True, "metrics_format": "jsonl",
    # false | true | a mapping (engine/monitor_config.py); None here so that a mapping passes the type check of
    # `override`; _check_pretrain normalizes both to False (off) or the full mapping
    "knn_monitor": None, "online_linear": None,
    "log_every": 10, "optim": {},
    "budget": None,  # None: epochs; else one of epochs / images_seen / wall_time_s (config/budget.py)
    # build the next batch's views while the step runs (engine/prefetch.py): "auto" | true | false. None here so
    # that a bool passes the type check of `override`; _check_pretrain normalizes it ("auto" when not given)
    "prefetch": None,
}
AMP_CHOICES = ("auto", "bf16", "fp16", "off")
OUTPUT_DEFAULTS: dict[str, Any] = {"dir": None, "table": True, "report": True, "predictions": True,
                                   "loggers": []}  # experiment trackers: tensorboard, wandb, csv (engine/loggers)


def _entry(item: Any, field: str, keys: list[str]) -> tuple[str, dict]:
    """A list item is a bare name or a mapping with `name` plus the given keys."""
    if isinstance(item, str) and item:
        return item, {}
    if isinstance(item, dict):
        v.check_keys(item, ["name", *keys], field)
        if "name" not in item:
            raise UserError(f"{field}.name: missing; allowed: a registered name (see `ssl-bench list`)")
        return v.as_str(item["name"], f"{field}.name"), item
    raise v.fail(field, item, "a name or a mapping with 'name'")


def _method(item: Any, field: str, pretrain: dict) -> MethodSpec:
    from ssl_bench.data.augment import ViewRecipe  # torch-heavy import, only once validation gets here

    name, d = _entry(item, field, ["params", "optim", "augment", "epochs", "budget", "label", "preset"])
    cls = METHODS.get(name, where=f"{field}.name")
    budget, epochs, epochs_field = budgets.for_method(d, pretrain, field)
    if budget is not None and not cls.trainable and "budget" in d:
        raise v.fail(f"{field}.budget", d["budget"], f"none: '{name}' is not trained")
    shown = epochs if budget is None else f"{next(iter(budget.values())):g}"  # a str: never an epoch count
    preset_name, preset = apply_preset(cls, name, d.get("preset"), shown, pretrain["batch_size"], field,
                                       epochs_field)
    defaults = {**cls.defaults, **preset.params}  # the suite's params / optim still override a preset
    params = v.override(defaults, d.get("params"), f"{field}.params", getattr(cls, "param_ranges", None))
    optim = v.override({**cls.optim_recipe(), **preset.optim}, pretrain["optim"], "pretrain.optim")
    optim = v.override(optim, d.get("optim"), f"{field}.optim")
    _check_optim(optim, f"{field}.optim")
    given = set(v.as_dict(d.get("params"), f"{field}.params")) | set(pretrain["optim"]) | \
        set(v.as_dict(d.get("optim"), f"{field}.optim"))
    unset = unset_preset_warning(cls, name, epochs, {**params, **optim}, given, field) \
        if preset_name is None and budget is None else None
    if unset:
        print(f"warning: {unset}", file=sys.stderr)
    views = cls.view_recipes(params)
    aug = v.as_dict(d.get("augment"), f"{field}.augment")
    view_keys = [f"view{i + 1}" for i in range(len(views))]
    v.check_keys(aug, ["all", "blur_small_images", *view_keys], f"{field}.augment")
    for i, key in enumerate(view_keys):
        merged = {**views[i], **v.as_dict(aug.get("all"), f"{field}.augment.all"),
                  **v.as_dict(aug.get(key), f"{field}.augment.{key}")}
        views[i] = ViewRecipe.from_dict(merged, f"{field}.augment.{key}").to_dict()
    blur_small = v.as_bool(aug.get("blur_small_images", False), f"{field}.augment.blur_small_images")
    if budget is None:
        checks.check_epochs(name, cls.trainable, epochs, epochs_field)
        if cls.trainable:
            checks.check_warmup(name, optim["warmup_epochs"], epochs, v.as_dict(d.get("optim"), f"{field}.optim"),
                                pretrain["optim"], field, epochs_field)
    label = v.as_safe_name(d.get("label", name), f"{field}.label" if "label" in d else f"{field}.name")
    fingerprint = getattr(cls, "fingerprint", None)  # e.g. `pretrained`: the checkpoint's content hash
    return MethodSpec(name, params, optim, views, blur_small, epochs if cls.trainable else 0, label, preset_name,
                      budget if cls.trainable else None, fingerprint(params) if fingerprint else {})


def _check_optim(optim: dict, field: str) -> None:
    v.as_str(optim["optimizer"], f"{field}.optimizer", OPTIMIZERS.names())
    v.as_float(optim["base_lr"], f"{field}.base_lr", 0.0)
    v.as_float(optim["weight_decay"], f"{field}.weight_decay", 0.0)
    v.as_float(optim["momentum"], f"{field}.momentum", 0.0, 1.0)
    v.as_float(optim["warmup_epochs"], f"{field}.warmup_epochs", 0.0)
    _check_vit_optim(optim, field)


def _check_vit_optim(optim: dict, field: str) -> None:
    """The ViT-recipe fields (method.VIT_OPTIM_DEFAULTS): wd schedule, min lr, clipping, layer decay."""
    v.as_bool(optim["exclude_bias_and_norm"], f"{field}.exclude_bias_and_norm")
    v.as_bool(optim["exclude_tokens"], f"{field}.exclude_tokens")
    if optim["weight_decay_end"] is not None:
        v.as_float(optim["weight_decay_end"], f"{field}.weight_decay_end", 0.0)
    v.as_float(optim["min_lr"], f"{field}.min_lr", 0.0)
    if optim["clip_grad"] is not None and not _in(optim["clip_grad"], 0.0, math.inf):
        raise v.fail(f"{field}.clip_grad", optim["clip_grad"], "a number > 0, or null (no clipping)")
    v.as_str(optim["clip_mode"], f"{field}.clip_mode", ("total", "per_param"))
    if not _in(optim["layer_decay"], 0.0, 1.0):
        raise v.fail(f"{field}.layer_decay", optim["layer_decay"], "a number in (0, 1]; 1.0: off")


def _in(x: Any, lo: float, hi: float) -> bool:
    """A finite number in (lo, hi] (not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and lo < x <= hi


def _backbone(item: Any, field: str, inputs: list[tuple[int, str]]) -> BackboneSpec:
    name, d = _entry(item, field, ["kwargs", "small_stem", "label", "pretrained", "pretrained_file"])
    from ssl_bench.create import check_backbone_build, check_backbone_name

    check_backbone_name(name, f"{field}.name")
    kwargs = {**v.as_dict(d.get("kwargs"), f"{field}.kwargs"), **_pretrained_weights(d, field)}
    stem = d.get("small_stem", "auto")
    if stem != "auto" and not isinstance(stem, bool):
        raise v.fail(f"{field}.small_stem", stem, "auto, true or false")
    label = v.as_safe_name(d.get("label", name), f"{field}.label" if "label" in d else f"{field}.name")
    check_backbone_build(name, kwargs, stem, f"{field}.kwargs", inputs)
    return BackboneSpec(name, kwargs, stem, label)


def _pretrained_weights(d: dict, field: str) -> dict[str, Any]:
    """`pretrained: true` loads timm's weights (downloaded from its hub); with `pretrained_file` they come from
    a local file instead, for clusters without internet (timm's pretrained_cfg_overlay)."""
    pretrained = v.as_bool(d.get("pretrained", False), f"{field}.pretrained")
    path = d.get("pretrained_file")
    if path is None:
        return {"pretrained": True} if pretrained else {}
    if not pretrained:
        raise v.fail(f"{field}.pretrained_file", path, "a file only together with `pretrained: true`")
    v.ExistingFile().check(path, f"{field}.pretrained_file")
    return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(Path(path).resolve())}}


def _dataset(item: Any, field: str) -> DatasetSpec:
    from ssl_bench.data.datasets import dataset_params

    name, d = _entry(item, field, ["image_size", "params", "label"])
    checks.check_dataset_loader(name, f"{field}.name")
    checks.check_dataset_metric(name, f"{field}.name")
    loader = DATASETS.get(name, where=f"{field}.name")
    v.as_safe_name(name, f"{field}.name")  # a plugin may register any string; it becomes part of run folders
    # the name records, tables and published rows use (e.g. `imagenet` for an image_folder of ImageNet)
    label = v.as_safe_name(d.get("label", name), f"{field}.label" if "label" in d else f"{field}.name")
    size = d.get("image_size")
    if size is not None:
        size = v.as_int(size, f"{field}.image_size", 4, 1024)
    params = v.override(dataset_params(name), d.get("params"), f"{field}.params")
    if params.get("train_size") is not None:  # its upper bound needs the data: checked when it loads
        params["train_size"] = v.as_int(params["train_size"], f"{field}.params.train_size", 1)
    check = getattr(loader, "check_params", None)  # a dataset's own cheap checks (image_folder's folders)
    if check is not None:
        check(params, f"{field}.params")
    return DatasetSpec(name, size, params, label)


def _evaluation(item: Any, field: str) -> EvalSpec:
    name, d = _entry(item, field, ["params"])
    cls = EVALUATIONS.get(name, where=f"{field}.name")
    params = v.override(cls.defaults, d.get("params"), f"{field}.params", getattr(cls, "param_ranges", None))
    try:
        cls(**params)  # the plugin's own range checks run now, before any pretraining
    except UserError as exc:
        raise checks.evaluation_error(exc, name, field) from None
    checks.check_eval_dataset_names(params, field)
    return EvalSpec(name, params)


def _nonempty(raw: dict, key: str) -> list:
    items = v.as_list(raw.get(key), key)
    if not items:
        raise UserError(f"{key}: missing or empty; allowed: a non-empty list")
    return items


def parse_suite(raw: Any, path: str = "<suite>") -> Suite:
    raw = v.as_dict(raw, "suite") if raw is not None else {}
    v.check_keys(raw, TOP_KEYS, "")
    if "name" not in raw:
        raise UserError("name: missing; allowed: a non-empty string naming the suite")
    name = v.as_safe_name(raw["name"], "name")  # the default output folder is results/<name>
    plugins = [v.as_str(m, f"plugins[{i}]") for i, m in enumerate(v.as_list(raw.get("plugins"), "plugins"))]
    import_plugins(plugins, Path(path).resolve().parent)  # files beside the suite by path, never via sys.path
    seeds_raw = raw.get("seeds", [0])
    seeds_raw = [seeds_raw] if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool) else seeds_raw
    seeds = [v.as_int(s, f"seeds[{i}]", 0) for i, s in enumerate(v.as_list(seeds_raw, "seeds"))]
    if not seeds or len(set(seeds)) != len(seeds):
        raise v.fail("seeds", seeds_raw, "a non-empty list of distinct integers >= 0")
    pretrain = v.override(PRETRAIN_DEFAULTS, raw.get("pretrain"), "pretrain")
    _check_pretrain(pretrain)
    budgets.normalize_pretrain(pretrain, raw.get("pretrain") or {})
    output = v.override(OUTPUT_DEFAULTS, raw.get("output"), "output")
    if output["dir"] is not None:
        v.as_str(output["dir"], "output.dir")
    output["loggers"] = check_loggers(output["loggers"])
    data_root = raw.get("data_root")
    if data_root is not None:
        v.as_str(data_root, "data_root")
    methods = [_method(m, f"methods[{i}]", pretrain) for i, m in enumerate(_nonempty(raw, "methods"))]
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise v.fail("methods", labels, "distinct entries: give repeated methods distinct `label:`s")
    datasets = [_dataset(d, f"datasets[{i}]") for i, d in enumerate(_nonempty(raw, "datasets"))]
    inputs = checks.backbone_inputs(datasets, data_root)  # backbones are built and run at these sizes
    suite = Suite(
        name=name, path=path, seeds=seeds, plugins=plugins,
        methods=methods,
        backbones=[_backbone(b, f"backbones[{i}]", inputs) for i, b in enumerate(_nonempty(raw, "backbones"))],
        datasets=datasets,
        evaluations=[_evaluation(e, f"evaluations[{i}]") for i, e in enumerate(_nonempty(raw, "evaluations"))],
        pretrain=pretrain, output=output, data_root=data_root,
        download=v.as_bool(raw.get("download", False), "download"),
        description=str(raw.get("description", "")),
        launcher=check_launcher(raw.get("launcher")),
    )
    checks.check_distinct(suite.datasets, suite.evaluations)
    checks.check_distinct_backbones(suite.backbones)
    checks.check_run_id_length(suite)
    checks.check_pretrain_needs(suite)
    checks.check_layer_decay(suite)
    checks.check_view_sizes(suite)
    checks.check_batch_size(suite)  # last: it may load a small embedded dataset
    return suite


def _check_pretrain(p: dict) -> None:
    v.as_int(p["epochs"], "pretrain.epochs", 0, 100000)
    v.as_int(p["batch_size"], "pretrain.batch_size", 2, 1 << 20)
    v.as_str(p["amp"], "pretrain.amp", AMP_CHOICES)
    dev = v.as_str(p["device"], "pretrain.device")
    if not (dev in ("auto", "cpu", "cuda") or dev.startswith("cuda:")):
        raise v.fail("pretrain.device", dev, "auto, cpu, cuda or cuda:N")
    v.as_int(p["num_workers"], "pretrain.num_workers", 0, 256)
    v.as_int(p["log_every"], "pretrain.log_every", 1)
    v.as_str(p["metrics_format"], "pretrain.metrics_format", ("jsonl", "csv"))
    v.check_keys(p["optim"], OPTIM_DEFAULTS, "pretrain.optim")
    p["knn_monitor"] = parse_knn_monitor(p["knn_monitor"])
    p["online_linear"] = parse_online_linear(p["online_linear"])
    p["prefetch"] = "auto" if p["prefetch"] is None else p["prefetch"]
    if not (isinstance(p["prefetch"], bool) or p["prefetch"] == "auto"):
        raise v.fail("pretrain.prefetch", p["prefetch"], "auto, true or false")


def load_suite(path: str | os.PathLike, overrides: list[str] | None = None,
               sweeps: list[str] | None = None) -> Suite:
    """Read and validate a suite file; every mistake is one UserError naming its field. `overrides`
    (PATH=VALUE, config/overrides.py) and `sweeps` (PATH=V1,V2, config/sweeps.py) change the raw mapping
    first, so they are validated exactly as the file's own fields; the suite keeps them (OUT/suite.yaml)."""
    from ssl_bench.config.overrides import apply_overrides
    from ssl_bench.config.sweeps import expand_sweeps, name_origin

    overrides, sweeps = list(overrides or []), list(sweeps or [])
    raw = read_suite_yaml(path)
    if not (overrides or sweeps):
        return parse_suite(raw, str(Path(path)))
    raw, origin = expand_sweeps(apply_overrides(raw, overrides), sweeps, Path(path).resolve().parent)
    try:
        suite = parse_suite(copy.deepcopy(raw), str(Path(path)))
    except UserError as exc:
        raise name_origin(exc, origin) from None
    suite.overrides = [*overrides, *(f"--sweep {s}" for s in sweeps)]
    suite.effective = raw
    return suite
