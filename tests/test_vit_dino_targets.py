"""Why suites/vit.yaml's DINO has a BN head, teacher temperature 0.04 and 40-100% global crops (issue 24 item 6).

At initialisation the tiny ViT's class token is nearly the same for every digit (mean cosine ~0.99 between different
images), so the teacher's centered, sharpened output barely depends on the image when the head has no BatchNorm
(main_dino.py's ViT default): the targets carry no information, and the loss settles at ln K (the suite's first run:
5.545 = ln 256, collapse score 0.021). BatchNorm in the head standardises each feature over the batch and so
spreads the images apart before the softmax. Each test measures this on digits with the suite's own net and head."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from ssl_bench.create import create_backbone, create_method
from test_zoo_targets import crop, digits

SUITE = Path(__file__).resolve().parents[1] / "suites" / "vit.yaml"


def vit_dino() -> tuple[dict, dict, int]:
    """(DINO params, backbone kwargs, image size) of suites/vit.yaml."""
    suite = yaml.safe_load(SUITE.read_text())
    entry = next(m for m in suite["methods"] if isinstance(m, dict) and m["name"] == "dino")
    return entry["params"], suite["backbones"][0]["kwargs"], suite["datasets"][0]["image_size"]


def target_overlap_ratio(**overrides) -> float:
    """At init: overlap sum(q1 * q2) of the teacher targets of two crops of one digit over that of two different
    digits, q = softmax((t - mean t) / tau_t) written out here, centred on the batch mean (what the running centre
    tracks)."""
    params, kwargs, size = vit_dino()
    params = {**params, **overrides}
    torch.manual_seed(0)
    backbone = create_backbone("vit_tiny_patch16_224", in_chans=1, image_size=size, **kwargs)
    m = create_method("dino", backbone, 10, **params).train()
    x = digits()
    g = torch.Generator().manual_seed(1)
    b, lo = x[torch.randperm(len(x), generator=g)[:128]], params["global_crop_scale"][0]
    with torch.no_grad():
        t1, t2 = m.teacher_head(m.teacher_backbone(torch.cat([crop(b, g, lo, size), crop(b, g, lo, size)]))).chunk(2)
        c = torch.cat([t1, t2]).mean(0, keepdim=True)
        q1, q2 = (F.softmax((t - c) / params["teacher_temp"], dim=1) for t in (t1, t2))
    return float((q1 * q2).sum(1).mean() / (q1 @ q2.T).mean())


def test_only_the_bn_head_gives_the_tiny_vit_image_dependent_targets():
    assert target_overlap_ratio(use_bn_in_head=False) < 1.5  # main_dino.py's ViT head: nearly uniform targets
    assert target_overlap_ratio() > 2.0  # the suite's head: a view's target points to its own image
