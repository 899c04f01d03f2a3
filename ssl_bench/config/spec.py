"""The typed suite: what a suite file says once it is validated (config/suite.py builds these). Plain data, no
imports of the layers that read it, so every module may name these types."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MethodSpec:
    name: str
    params: dict[str, Any]
    optim: dict[str, Any]
    views: list[dict[str, Any]]
    blur_small_images: bool
    epochs: int
    label: str = ""  # how tables and records name it (an ablation gives two entries of one method two labels)
    preset: str | None = None  # the paper preset its defaults came from (ssl_bench/presets.py), if any
    budget: dict[str, float] | None = None  # images_seen or wall_time_s (then epochs is 0); None: epochs
    # what the method's files hold (`Method.fingerprint`: a checkpoint's sha256), so the run id follows the
    # weights, not their path
    content: dict[str, str] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return self.epochs > 0 or self.budget is not None


@dataclass
class BackboneSpec:
    name: str
    kwargs: dict[str, Any]
    small_stem: bool | str
    label: str


@dataclass
class DatasetSpec:
    name: str  # the registered loader (image_folder, cifar10, ...)
    image_size: int | None
    params: dict[str, Any]
    # what records, tables and published rows call it (a folder of ImageNet: `imagenet`); default: the loader name
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or self.name


@dataclass
class EvalSpec:
    name: str
    params: dict[str, Any]


@dataclass
class Suite:
    name: str
    path: str
    seeds: list[int]
    methods: list[MethodSpec]
    backbones: list[BackboneSpec]
    datasets: list[DatasetSpec]
    evaluations: list[EvalSpec]
    pretrain: dict[str, Any]
    output: dict[str, Any]
    plugins: list[str] = field(default_factory=list)
    data_root: str | None = None
    download: bool = False
    description: str = ""
    launcher: dict[str, Any] = field(default_factory=dict)  # defaults for --launcher local|slurm
    # command-line changes (`PATH=VALUE`, `--sweep PATH=V1,V2`) and the raw mapping they gave (config/overrides.py)
    overrides: list[str] = field(default_factory=list)
    effective: dict[str, Any] | None = None
