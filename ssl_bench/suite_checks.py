"""Suite checks across entries or against the data's size. Cheap on purpose: nothing is downloaded or decoded,
and only datasets embedded in installed packages are loaded (the run then reuses them from the cache)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from . import validate as v
from .errors import DatasetUnavailableError, UserError

if TYPE_CHECKING:
    from .suite import DatasetSpec, EvalSpec, Suite


def check_epochs(name: str, trainable: bool, epochs: int, field: str) -> None:
    """0 epochs is for untrained baselines: a trainable method's row would look trained but be random."""
    if trainable and epochs == 0:
        raise v.fail(field, epochs, f"an integer in [1, 100000] for the trainable method '{name}' (only untrained "
                                    "baselines such as random take 0)")


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
    from .registry import DATASETS

    names = [(params["dataset"], f"{field}.params.dataset")] if params.get("dataset") is not None else []
    if isinstance(params.get("datasets"), list):
        names += [(n, f"{field}.params.datasets[{i}]") for i, n in enumerate(params["datasets"])]
    for name, where in names:
        DATASETS.get(v.as_str(name, where), where=where)
        v.as_safe_name(name, where)


def check_distinct(datasets: list[DatasetSpec], evaluations: list[EvalSpec]) -> None:
    """A dataset twice would pretrain the same runs twice and mix their rows; an evaluation twice, its rows."""
    seen: dict[str, int] = {}
    for i, d in enumerate(datasets):
        first = seen.setdefault(d.name, i)
        if first != i:
            raise v.fail(f"datasets[{i}].name", d.name, f"a dataset not listed before (datasets[{first}] is "
                                                         f"'{d.name}' already)")
    keys: dict[str, int] = {}
    for i, e in enumerate(evaluations):
        first = keys.setdefault(f"{e.name}:{json.dumps(e.params, sort_keys=True, default=str)}", i)
        if first != i:
            raise v.fail(f"evaluations[{i}]", e.name, f"an evaluation not listed before (evaluations[{first}] has "
                                                      "the same name and params)")


def check_batch_size(suite: Suite) -> None:
    """pretrain.batch_size against each pretraining dataset's train split: a larger batch gives zero steps per
    epoch (the last partial batch is dropped). Where the size is unknown without the data, the check waits
    for the run."""
    from .data.datasets import train_split_size

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


def check_pretrain_needs(suite: Suite) -> None:
    """An evaluation that reads back what pretraining wrote declares the `pretrain` options it needs in
    `requires_pretrain` (knn_max: the kNN monitor's curve; online_linear: the online head). Listing it with the
    option off would only fail after every run had trained: refuse it here."""
    from .registry import EVALUATIONS

    for i, e in enumerate(suite.evaluations):
        for key in getattr(EVALUATIONS.get(e.name), "requires_pretrain", ()):
            if not suite.pretrain.get(key):
                raise UserError(f"evaluations[{i}].name: '{e.name}' needs pretrain.{key}, which is off; allowed: "
                                f"set pretrain.{key} (true or a mapping), or drop '{e.name}'")


def check_view_sizes(suite: Suite) -> None:
    """Every view of every method is at least augment_recipe.MIN_VIEW_PX at each dataset's given image_size
    (a native size is known only once the data loads: the run checks it then)."""
    from .data.augment_recipe import check_view_sizes as check

    for i, m in enumerate(suite.methods):
        for d in suite.datasets:
            if d.image_size is not None:
                check(m.views, d.image_size, f"methods[{i}].augment")
