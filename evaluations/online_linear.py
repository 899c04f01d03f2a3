"""solo-learn's "online" linear accuracy: the head trained during pretraining, on the test split [solo-learn].

With `pretrain.online_linear` the engine trains a linear classifier on the encoder's detached features of the
training views, beside pretraining (ssl_bench.engine.online_head explains how and what differs from
solo-learn), and saves it in the run's final.pt. This protocol applies that head to the frozen final encoder's
features of the pretraining dataset's test split (the test view: resize + center crop, eval-mode BN), as
solo-learn's validation does. It is not a linear probe trained on frozen features (`linear`, `linear_sgd`):
the head chased a moving encoder, so it usually scores below a probe.

A suite listing online_linear without pretrain.online_linear is refused at validate. An untrained baseline
(random, epochs 0) has no head: its row has status "skipped" (not applicable; never retried, not in tables).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ssl_bench.engine import checkpoint
from ssl_bench.engine.online_head import online_logits
from ssl_bench.evaluation import EvalContext, Evaluation, Protocol
from ssl_bench.evalkit.recipes import ONLINE_FIELDS
from ssl_bench.metrics import classification_metrics
from ssl_bench.registry import register_evaluation


@register_evaluation("online_linear")
class OnlineLinearEvaluation(Evaluation):
    """Top-1 / top-5 of the online linear head on the pretraining dataset's test split."""

    name = "online_linear"
    defaults: dict[str, Any] = {}
    protocols = (Protocol("online_linear", "Linear (online)", 35, ("top1", "top5"), table="online",
                          recipe_fields=ONLINE_FIELDS),)
    requires_pretrain = ("online_linear",)  # checked at validate (ssl_bench.config.checks.check_pretrain_needs)

    def recipe(self, run: dict[str, Any], views: int | None = None) -> dict[str, Any] | None:
        """The head's own plain SGD (ssl_bench.engine.online_head), lr per 256 images, no weight decay, the
        pretraining schedule, `views` per image (known once the head is loaded), the test split."""
        cfg = run.get("online_linear")
        if not cfg:
            return None
        return {"optimizer": "sgd", "classifier_lr_per_256": float(cfg["base_lr"]), "weight_decay": 0.0,
                "schedule": "as pretraining", "views": views, "split": "test"}

    def evaluate(self, ctx: EvalContext) -> list[dict[str, Any]]:
        final = Path(ctx.out_dir) / "final.pt"
        if not final.exists():  # not a failure to retry: the protocol does not apply (status "skipped")
            return [{"protocol": "online_linear", "eval_dataset": ctx.pretrain.name, "status": "skipped",
                     "error": "not applicable: this run was not pretrained (an untrained baseline), so it has no "
                              "online head"}]
        state = checkpoint.load(final).get("online_linear")
        if state is None:
            raise RuntimeError(f"{final} holds no online head: train with pretrain.online_linear")
        feats, labels = ctx.features(ctx.pretrain.name, "test")
        logits = online_logits(state, feats)
        values = classification_metrics(logits.cpu(), labels.cpu(), ctx.pretrain.metric)
        extra = {"n_test": len(feats), "head": "online", "classes": logits.shape[1]}
        recipe = self.recipe(ctx.run_config, state.get("views_per_image"))  # None: saved before it was counted
        return [{"protocol": "online_linear", "eval_dataset": ctx.pretrain.name, "metric": m, "value": v,
                 "extra": dict(extra), "recipe": recipe} for m, v in values.items()]
