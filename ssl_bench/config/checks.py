"""Suite checks across entries or against the data's size. Cheap on purpose: nothing is downloaded or decoded,
and only datasets embedded in installed packages are loaded (the run then reuses them from the cache)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ssl_bench import validate as v
from ssl_bench.errors import DatasetUnavailableError, UserError

if TYPE_CHECKING:
    from ssl_bench.config.spec import BackboneSpec, DatasetSpec, EvalSpec, Suite


def check_epochs(name: str, trainable: bool, epochs: int, field: str) -> None:
    """0 epochs is for untrained baselines: a trainable method's row would look trained but be random."""
    if trainable and epochs == 0:
        raise v.fail(field, epochs, f"an integer in [1, 100000] for the trainable method '{name}' (only untrained "
                                    "baselines such as random take 0)")


def check_warmup(name: str, warmup: float, epochs: int, method_optim: dict, pretrain_optim: dict, field: str,
                 epochs_field: str) -> None:
    """A warmup the suite sets longer than the run never reaches the peak lr nor decays (warmup_cosine): refused,
    naming where it was set. A method's own default (BYOL: 10) is left alone: short smoke-test suites use it."""
    if warmup <= epochs:
        return
    allowed = f"at most {epochs_field} ({epochs})"
    if "warmup_epochs" in method_optim:
        raise v.fail(f"{field}.optim.warmup_epochs", warmup, allowed)
    if "warmup_epochs" in pretrain_optim:
        raise v.fail("pretrain.optim.warmup_epochs", warmup, f"{allowed} for method '{name}' ({field})")


def evaluation_error(exc: UserError, name: str, field: str) -> UserError:
    """An evaluation's own range check says 'evaluation knn: params.k ...'; name the suite's field instead."""
    msg = str(exc)
    prefix = f"evaluation {name}: params."
    if msg.startswith(prefix):
        return UserError(f"{field}.params.{msg[len(prefix):]}")
    return UserError(f"{field}.params: {msg}")


def _dataset_error(exc: UserError, name: str, field: str) -> UserError:
    msg, prefix = str(exc), f"dataset {name}: params."
    return UserError(f"{field}.params.{msg[len(prefix):]}" if msg.startswith(prefix) else f"{field}: {msg}")


def check_eval_dataset_names(params: dict[str, Any], field: str) -> None:
    """Evaluation datasets name files under the run folder (label subsets): registered, path-safe names."""
    from ssl_bench.registry import DATASETS

    names = [(params["dataset"], f"{field}.params.dataset")] if params.get("dataset") is not None else []
    if isinstance(params.get("datasets"), list):
        names += [(n, f"{field}.params.datasets[{i}]") for i, n in enumerate(params["datasets"])]
    for name, where in names:
        DATASETS.get(v.as_str(name, where), where=where)
        v.as_safe_name(name, where)
        check_dataset_metric(name, where)


def check_dataset_metric(name: str, field: str) -> None:
    """The metric a dataset's registration declares (its headline, what probes select on) is a registered one."""
    from ssl_bench.registry import DATASET_INFO, METRICS

    info = DATASET_INFO._items.get(name) if isinstance(name, str) else None  # the caller looked the name up
    if info is not None and info.metric is not None:
        METRICS.get(info.metric, where=f"{field} (dataset '{name}' declares metric={info.metric!r})")


def check_dataset_loader(name: str, field: str) -> None:
    """A dataset that published rows name but that has no loader (ImageNet) is read as a labelled image_folder."""
    from ssl_bench.registry import DATASET_INFO, DATASETS

    if isinstance(name, str) and name not in DATASETS and name in DATASET_INFO:
        raise v.fail(field, name, f"a dataset with a loader; '{name}' has none here: read its images with "
                                  f"`name: image_folder`, `label: {name}` and `params: {{path: ...}}`")


def check_distinct(datasets: list[DatasetSpec], evaluations: list[EvalSpec]) -> None:
    """A dataset twice would pretrain the same runs twice and mix their rows; an evaluation twice, its rows.
    Datasets are told apart by their label (two image_folder entries of different folders may both run)."""
    seen: dict[str, int] = {}
    for i, d in enumerate(datasets):
        first = seen.setdefault(d.label, i)
        if first != i:
            key = "label" if d.label != d.name else "name"
            raise v.fail(f"datasets[{i}].{key}", d.label, f"a dataset not listed before (datasets[{first}] is "
                                                          f"'{d.label}' already; give each entry its own `label`)")
    keys: dict[str, int] = {}
    for i, e in enumerate(evaluations):
        first = keys.setdefault(f"{e.name}:{json.dumps(e.params, sort_keys=True, default=str)}", i)
        if first != i:
            raise v.fail(f"evaluations[{i}]", e.name, f"an evaluation not listed before (evaluations[{first}] has "
                                                      "the same name and params)")


def check_distinct_backbones(backbones: list[BackboneSpec]) -> None:
    """The same backbone twice (whatever its labels) would train and evaluate every run twice."""
    seen: dict[str, int] = {}
    for i, b in enumerate(backbones):
        key = json.dumps([b.name, b.kwargs, b.small_stem], sort_keys=True, default=str)
        first = seen.setdefault(key, i)
        if first != i:
            raise v.fail(f"backbones[{i}]", b.label, f"a backbone not listed before (backbones[{first}] has the same "
                                                     "name, kwargs and small_stem)")


MAX_RUN_ID_CHARS = 200  # a run id names a folder and files in it (claims add suffixes): file names stop at 255 bytes


def check_run_id_length(suite: Suite) -> None:
    """Run ids are `method-backbone-dataset-sSEED-hash8`: refuse labels whose longest run id would not fit a file
    name, now rather than when the run's folder is made."""
    parts = [max(((len(x.encode()), f"{field}[{i}].{attr}") for i, x in enumerate(names)), default=(0, field))
             for field, attr, names in (("methods", "label", [m.label for m in suite.methods]),
                                        ("backbones", "label", [b.label for b in suite.backbones]),
                                        ("datasets", "name", [d.name for d in suite.datasets]))]
    (m, _), (b, _), (d, _) = parts
    total = len(f"{'m' * m}-{'b' * b}-{'d' * d}-s{max(suite.seeds)}-{'h' * 8}")  # as RunSpec.run_id spells it
    if total > MAX_RUN_ID_CHARS:
        longest = max(parts)[1]
        raise UserError(f"{longest}: run ids would be {total} characters (method label, backbone label, dataset, "
                        f"seed and hash); allowed: shorter labels, so that a run id has at most {MAX_RUN_ID_CHARS} "
                        "characters (it names the run's folder)")


def check_batch_size(suite: Suite) -> None:
    """pretrain.batch_size against each pretraining dataset's train split: a larger batch gives zero steps per
    epoch (the last partial batch is dropped). Where the size is unknown without the data, the check waits
    for the run."""
    batch = suite.pretrain["batch_size"]
    if not any(m.trained for m in suite.methods):
        return  # nothing is pretrained
    for i, d in enumerate(suite.datasets):
        try:
            size = train_split_size(d.name, suite.data_root, d.params)
        except DatasetUnavailableError:
            continue  # missing files are reported by the run, as failed rows
        except UserError as exc:  # e.g. a split fraction out of range: name the suite's field
            raise _dataset_error(exc, d.name, f"datasets[{i}]") from None
        if size is not None and batch > size:
            raise v.fail("pretrain.batch_size", batch, f"an integer <= {size} (the train split of datasets[{i}] "
                                                       f"'{d.name}' has {size} images)")


def backbone_inputs(datasets: list[DatasetSpec], data_root: str | None) -> list[tuple[int, str]]:
    """(image size, "datasets[j] 'name'") for each distinct size the suite's runs train at (image_size, else the
    data's own size where it is known without the files), so that validation builds and runs each backbone at
    it (create.check_backbone_build)."""
    inputs: dict[int, str] = {}
    for j, d in enumerate(datasets):
        try:
            size = d.image_size or native_image_size(d.name, data_root, d.params)
        except DatasetUnavailableError:
            continue  # missing files are reported by the run, as failed rows
        except UserError as exc:
            raise _dataset_error(exc, d.name, f"datasets[{j}]") from None
        if size is not None:
            inputs.setdefault(size, f"datasets[{j}] '{d.name}'")
    return [(size, where) for size, where in inputs.items()]


def check_pretrain_needs(suite: Suite) -> None:
    """An evaluation that reads back what pretraining wrote declares the `pretrain` options it needs in
    `requires_pretrain` (knn_max: the kNN monitor's curve; online_linear: the online head). Listing it with the
    option off would only fail after every run had trained: refuse it here."""
    from ssl_bench.registry import EVALUATIONS

    for i, e in enumerate(suite.evaluations):
        for key in getattr(EVALUATIONS.get(e.name), "requires_pretrain", ()):
            if not suite.pretrain.get(key):
                raise UserError(f"evaluations[{i}].name: '{e.name}' needs pretrain.{key}, which is off; allowed: "
                                f"set pretrain.{key} (true or a mapping), or drop '{e.name}'")


def train_split_size(name: str, root: str | None, params: dict[str, Any]) -> int | None:
    """The number of train images a run of `name` would pretrain on, or an upper bound of it (the dataset's
    declared train_size; the val hold-out comes out of it). None where it is unknown without the data; nothing is
    downloaded or scanned here, and only embedded datasets (cheap) are loaded to count."""
    from ssl_bench.create import create_dataset
    from ssl_bench.registry import DATASET_INFO, DATASETS

    if params.get("train_size") is not None:
        return int(params["train_size"])  # the subset's size (its own bound is checked when the data loads)
    if params.get("unlabeled"):
        return None  # a loader's unlabelled images join pretraining (STL-10's 100k): size unknown here
    info = DATASET_INFO.get(name) if name in DATASETS else None
    if info is not None and info.embedded:
        return len(create_dataset(name, root, False, **params).train)
    return info.train_size if info is not None else None


def check_layer_decay(suite: Suite) -> None:
    """optim.layer_decay < 1 scales the lr per ViT block: refuse it for a backbone without any (a CNN)."""
    import torch

    from ssl_bench.backbones.vit import is_vit
    from ssl_bench.create import create_backbone

    decayed = [(i, m) for i, m in enumerate(suite.methods) if m.trained and m.optim["layer_decay"] != 1.0]
    for i, m in decayed:
        for j, b in enumerate(suite.backbones):
            try:
                with torch.device("meta"):
                    net = create_backbone(b.name, in_chans=3, image_size=224, small_stem=b.small_stem,
                                          **{**b.kwargs, "pretrained": False})
            except Exception:  # noqa: BLE001 - a plugin backbone that cannot be built on meta: the run checks
                continue
            if not is_vit(net):
                raise v.fail(f"methods[{i}].optim.layer_decay", m.optim["layer_decay"],
                             f"1.0 (off) with backbones[{j}] '{b.name}', which has no ViT blocks")


def native_image_size(name: str, root: str | None, params: dict[str, Any]) -> int | None:
    """The image size a run of `name` trains at when the suite gives none (its bundle's native_size), for
    validation; None where it is unknown without the data. Folder datasets are decoded to 224 px views (or
    load_size when smaller: data/bundle.py)."""
    from ssl_bench.create import create_dataset
    from ssl_bench.data.bundle import FOLDER_VIEW_SIZE
    from ssl_bench.data.datasets import dataset_params
    from ssl_bench.registry import DATASET_INFO, DATASETS

    info = DATASET_INFO.get(name) if name in DATASETS else None
    if info is not None and info.embedded:
        return create_dataset(name, root, False, **params).native_size
    if info is not None and info.image_size:
        return info.image_size
    if "load_size" in dataset_params(name):
        return min(FOLDER_VIEW_SIZE, params.get("load_size") or FOLDER_VIEW_SIZE)
    return None


def check_view_sizes(suite: Suite) -> None:
    """Every view of every method is at least augment_recipe.MIN_VIEW_PX at each dataset's given image_size
    (a native size is known only once the data loads: the run checks it then)."""
    from ssl_bench.data.augment_recipe import check_view_sizes as check

    for i, m in enumerate(suite.methods):
        for d in suite.datasets:
            if d.image_size is not None:
                check(m.views, d.image_size, f"methods[{i}].augment")
