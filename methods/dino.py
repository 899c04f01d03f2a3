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
    # ViT presets go here once ViT backbones and AdamW with a cosine weight-decay schedule exist (the "vit"
    # helper): ViT-S/16 [README, main_dino.py defaults] = AdamW lr 5e-4 per 256, wd 0.04 -> 0.4 (cosine), clip
    # 3.0, out_dim 65536, norm_last_layer False, teacher temp 0.04 -> 0.07 over 30 epochs, global 0.4-1, 8 local
    # crops at 0.05-0.4, 100-800 epochs at batch 1024. Not declared yet: this engine cannot run that recipe.
    VIT_PRESETS: dict[str, Preset] = {}
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
