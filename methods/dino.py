"""DINO: self-DIstillation with NO labels (Caron et al., arXiv 2104.14294).

Algorithm box [DINO Alg. 1, facebookresearch/dino main_dino.py]:
  student = encoder -> DINO head (MLP, l2-normalize, weight-normalized K-way layer)   (trained)
  teacher = encoder' -> head'                       (EMA of the student, never trained)
  center C = 0 (1 x K)
  for each batch: 2 global views + N local views (multi-crop) of every image
      s = student(all views)                         one forward per run of same-size views
      t = teacher(global views)                      no gradient
      loss = mean over pairs (global view a, view b != a) of H(softmax((t_a - C) / tau_t), softmax(s_b / tau_s))
      C <- m C + (1 - m) mean(t)                     over the global batch (all processes), m = 0.9
  tau_t: linear warm-up 0.04 -> 0.07 over the first epochs, then constant; tau_s = 0.1
  in the first epoch(s) the head's last layer is frozen (its gradients are dropped before the optimizer step)
  after each optimizer step: teacher <- lambda teacher + (1 - lambda) student, lambda cosine 0.996 -> 1
  evaluations probe the teacher's encoder
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ssl_bench.method import Method, cosine_momentum, multicrop_forward, set_requires_grad
from ssl_bench.presets import Preset
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM, POSITIVE, UNIT, OneOf, Range

from ssl_bench.methods.dino_head import DINOHead
from ssl_bench.methods.losses import dino_center, dino_loss, teacher_temperature
from ssl_bench.methods.views import DINO_GLOBAL_1, DINO_GLOBAL_2, DINO_LOCAL, LOCAL_96_OF_224, multi_crop

SCALE = Range(0, 1, lo_open=True)  # a crop's area fraction


@register_method("dino")
class DINO(Method):
    """DINO: a student matches the centered, sharpened EMA teacher over 2 global + N local crops."""

    # The ResNet-50 recipe, the released 75.3% model (arch resnet50, 4080 images on 80 GPUs [dino#133]; values
    # as its args.txt per the issue brief, where main_dino.py's defaults are the ViT ones, noted per line).
    defaults = {
        "out_dim": 65536,  # [main_dino.py L55]
        "hidden_dim": 2048,  # [vision_transformer.py L258 DINOHead]
        "bottleneck_dim": 256,  # [vision_transformer.py L258]
        "use_bn_in_head": True,  # ResNet-50 args (code default False, L64)
        "norm_last_layer": True,  # [L57]
        "momentum_teacher": 0.996,  # [L61], cosine to 1 [L250]
        "warmup_teacher_temp": 0.04,  # [L68]
        "teacher_temp": 0.07,  # ResNet-50 and ViT-S/16 args (code default 0.04, L71)
        "warmup_teacher_temp_epochs": 50,  # ResNet-50 args (ViT-S/16: 30; code default 0, L74)
        "student_temp": 0.1,  # [DINOLoss L366]
        "center_momentum": 0.9,  # [DINOLoss L366]
        "freeze_last_layer": 1,  # epochs [L93]
        "global_crop_scale": [0.14, 1.0],  # ResNet [README L207] (ViT default 0.4-1, L108)
        "local_crops": 6,  # ResNet-50 args (ViT default 8, L112)
        "local_crop_scale": [0.05, 0.14],  # ResNet [README L207] (ViT default 0.05-0.4, L115)
        "local_size_frac": LOCAL_96_OF_224,  # 96 px of 224 [DataAugmentationDINO L452]
        "evaluate": "teacher",  # the encoder evaluations probe [eval_linear.py L264 checkpoint_key "teacher"]
    }
    param_ranges = {"out_dim": DIM, "hidden_dim": DIM, "bottleneck_dim": DIM, "momentum_teacher": UNIT,
                    "warmup_teacher_temp": POSITIVE, "teacher_temp": POSITIVE, "warmup_teacher_temp_epochs": Range(0),
                    "student_temp": POSITIVE, "center_momentum": UNIT, "freeze_last_layer": Range(0),
                    "global_crop_scale": SCALE, "local_crops": Range(0, 64), "local_crop_scale": SCALE,
                    "local_size_frac": SCALE, "evaluate": OneOf(("teacher", "student"))}
    # ResNet-50: LARS, lr 0.3 per 256 images (linear scaling [L239]), wd 1e-6, 10 warm-up epochs [L99].
    optim = {"optimizer": "lars", "base_lr": 0.3, "weight_decay": 1e-6, "warmup_epochs": 10}
    augmentation = {"views": multi_crop([DINO_GLOBAL_1, DINO_GLOBAL_2], DINO_LOCAL, 6, [0.14, 1.0], [0.05, 0.14],
                                        LOCAL_96_OF_224)}
    # ViT-S/16 (`arch vit_small`, patch 16) [dino README "Vanilla DINO training" and "Boosting DINO
    # performance"; main_dino.py argparse defaults]: AdamW (utils.get_params_groups: biases and 1-d tensors not
    # decayed, pos_embed / cls_token decayed), lr 0.0005 per 256 images, 10 warm-up epochs, cosine to min_lr 1e-6,
    # wd cosine 0.04 -> 0.4, clip_grad 3.0 per parameter tensor (utils.clip_gradients), freeze_last_layer 1,
    # momentum 0.996 -> 1, head without BN, 2 global crops at 0.4-1 + 8 local at 0.05-0.4, batch 64 per GPU.
    # 100 epochs: the vanilla command on 8 GPUs (batch 512), teacher_temp 0.04 with no warm-up, norm_last_layer
    # true (README: 69.3% k-NN, ~73.8% linear). 300 epochs: the boosted command (run_with_submitit.py defaults to
    # 2 nodes x 8 GPUs: batch 1024) adds --teacher_temp 0.07 --warmup_teacher_temp_epochs 30 --norm_last_layer
    # false (README: 73.3% k-NN, ~76.1% linear). drop_path_rate 0.1 is a backbone kwarg (timm drop_path_rate),
    # not part of the preset. Named only (paper=False): `preset: paper` stays the ResNet-50 recipe.
    _VIT_S16 = {"use_bn_in_head": False, "global_crop_scale": [0.4, 1.0], "local_crops": 8,
                "local_crop_scale": [0.05, 0.4], "local_size_frac": LOCAL_96_OF_224, "momentum_teacher": 0.996,
                "freeze_last_layer": 1, "warmup_teacher_temp": 0.04}
    _VIT_OPTIM = {"optimizer": "adamw", "base_lr": 5e-4, "weight_decay": 0.04, "weight_decay_end": 0.4,
                  "min_lr": 1e-6, "warmup_epochs": 10, "clip_grad": 3.0, "clip_mode": "per_param",
                  "betas": [0.9, 0.999], "exclude_bias_and_norm": True, "exclude_tokens": False}
    VIT_PRESETS: dict[str, Preset] = {
        "dino-vit_small-100ep": Preset(
            512, "dino README vanilla ViT-S/16 command (8 GPUs x 64); main_dino.py defaults", 100,
            params={**_VIT_S16, "teacher_temp": 0.04, "warmup_teacher_temp_epochs": 0, "norm_last_layer": True},
            optim=_VIT_OPTIM, paper=False),
        "dino-vit_small-300ep": Preset(
            1024, "dino README boosted ViT-S/16 command (run_with_submitit.py, 2 nodes x 8 GPUs x 64); "
            "main_dino.py defaults", 300,
            params={**_VIT_S16, "teacher_temp": 0.07, "warmup_teacher_temp_epochs": 30, "norm_last_layer": False},
            optim=_VIT_OPTIM, paper=False)}
    presets = {"dino-resnet50-800ep": Preset(4080, "dino README resnet50 row; dino#133 (4080 on 80 GPUs)", 800),
               **VIT_PRESETS}

    @classmethod
    def view_recipes(cls, params: dict[str, Any]) -> list[dict[str, Any]]:
        """2 global + local_crops local views for the resolved crop parameters."""
        p = {**cls.defaults, **params}
        return multi_crop([DINO_GLOBAL_1, DINO_GLOBAL_2], DINO_LOCAL, p["local_crops"], p["global_crop_scale"],
                          p["local_crop_scale"], p["local_size_frac"])

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        hp = self.hparams
        self.head = DINOHead(backbone.num_features, hp["out_dim"], hp["use_bn_in_head"], hp["norm_last_layer"],
                             hidden_dim=hp["hidden_dim"], bottleneck_dim=hp["bottleneck_dim"])
        self.teacher_backbone = copy.deepcopy(backbone)  # teacher and student start equal [L208]
        self.teacher_head = copy.deepcopy(self.head)
        set_requires_grad(self.teacher_backbone, False)
        set_requires_grad(self.teacher_head, False)
        self.register_buffer("center", torch.zeros(1, hp["out_dim"]))

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        hp = self.hparams
        with torch.no_grad():
            teacher = self.teacher_head(self.teacher_backbone(torch.cat(views[:2]))).chunk(2)  # globals only
        student = self.head(multicrop_forward(self.backbone, views)).chunk(len(views))
        temp = teacher_temperature(self.progress.epoch, hp["warmup_teacher_temp"], hp["teacher_temp"],
                                   hp["warmup_teacher_temp_epochs"])
        loss = dino_loss(list(student), list(teacher), self.center, temp, hp["student_temp"])
        self.center.copy_(dino_center(self.center, torch.cat(teacher), hp["center_momentum"]))  # after the loss
        return {"loss": loss}

    def before_optimizer_step(self) -> None:
        if self.progress.epoch < self.hparams["freeze_last_layer"]:  # [utils.py cancel_gradients_last_layer]
            for p in self.head.last_layer.parameters():
                p.grad = None

    def encoder(self) -> nn.Module:
        """The teacher's backbone, as DINO evaluates (or the student's, with evaluate: student)."""
        return self.teacher_backbone if self.hparams["evaluate"] == "teacher" else self.backbone

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.teacher_backbone), (self.head, self.teacher_head)]

    def momentum_at(self, step: int, total_steps: int) -> float:
        return cosine_momentum(self.hparams["momentum_teacher"], step, total_steps)
