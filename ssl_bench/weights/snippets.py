"""The load snippets of an export's model card: complete Python a reader can paste and run (tests execute each
one), plus the suite entry that evaluates the file with ssl-bench.

timm alone rebuilds an encoder only when ssl-bench changed nothing timm cannot express: a small-image stem
(3x3, stride 1, no max-pool) or a narrowed single-conv stem (`stem_width`, which timm ignores) need ssl-bench's
builder, so those cards load through `ssl_bench.create.create_backbone` (timm's model with the same stem)."""
from __future__ import annotations

from typing import Any

SMALL_STEM_MAX = 64  # backbones/timm_backbone.py: small_stem "auto" switches stems at image_size <= 64


def plain_timm(name: str, kwargs: dict[str, Any], small_stem: Any, image_size: int | None) -> bool:
    """Whether `timm.create_model` alone builds this encoder: a ResNet without ssl-bench's stem changes (other
    families may take the suite's image size, img_size, which ssl-bench's builder passes)."""
    small = bool(small_stem) if small_stem != "auto" else (image_size or 224) <= SMALL_STEM_MAX
    return name.startswith(("resnet", "wide_resnet")) and "stem_width" not in kwargs and not small


def load_snippets(name: str, kwargs: dict[str, Any], small_stem: Any, image_size: int | None, in_chans: int,
                  path: str, fmt: str) -> dict[str, str]:
    """{"timm": python, "torchvision": python, "ssl_bench": a suite's methods entry, "note": text}."""
    args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    load = f"model.load_state_dict(torch.load({path!r}, weights_only=True))"
    if plain_timm(name, kwargs, small_stem, image_size):
        timm_code = (f"import timm, torch\nmodel = timm.create_model({name!r}, num_classes=0, "
                     f"in_chans={in_chans}{args})\n{load}\n")
    else:
        timm_code = ("import torch\nfrom ssl_bench.create import create_backbone  # timm's model with ssl-bench's "
                     f"stem\nmodel = create_backbone({name!r}, in_chans={in_chans}, image_size={image_size}, "
                     f"small_stem={small_stem!r}{args})\n{load}\n")
    if not kwargs and plain_timm(name, kwargs, small_stem, image_size) and in_chans == 3:
        tv = (f"import torch, torchvision\nmodel = torchvision.models.{name}()\n"
              f"missing, unexpected = model.load_state_dict(torch.load({path!r}, weights_only=True), strict=False)\n"
              "assert set(missing) == {'fc.weight', 'fc.bias'} and not unexpected  # the file has no classifier\n")
    else:
        tv = ("# no torchvision model has this encoder's widths, stem or input channels: use the timm snippet\n"
              f"print({name!r}, 'is not a torchvision ResNet as trained here')\n")
    return {"timm": timm_code, "torchvision": tv,
            "ssl_bench": f"methods: [{{name: pretrained, params: {{checkpoint: {path}, format: {fmt}}}}}]",
            "note": "each snippet is complete Python; the ssl_bench line is a suite's methods entry (validated "
                    "like any suite)"}
