"""I-JEPA (methods/ijepa.py): the layer-normed targets and smooth-L1 loss against the official formula
[IJ src/train.py L295-313] written out here in float64, the predictor's token placement and per-block
sequences, the wiring of training_step, the EMA schedule, the evaluated encoder, the recipe, and a few engine
steps on digits."""
import math

import pytest
import torch

from masked_image_helpers import tiny_vit, train_with_engine
from ssl_bench.create import create_backbone, create_method
from ssl_bench.errors import UserError
from ssl_bench.methods.ijepa import IJEPA
from ssl_bench.methods.losses import ijepa_loss, ijepa_targets
from ssl_bench.methods.token_heads import JEPAPredictor

SMALL = {"pred_dim": 16, "pred_depth": 1, "min_keep": 4}


def ref_layer_norm(v: torch.Tensor) -> torch.Tensor:
    """F.layer_norm(h, (D,)) without affine: biased variance, eps 1e-5."""
    mu = v.sum() / v.numel()
    var = ((v - mu) ** 2).sum() / v.numel()
    return (v - mu) / torch.sqrt(var + 1e-5)


def ref_ijepa_loss(pred, tokens, target_idx):
    """mean over (image, block, patch, feature) of smooth-L1 (beta 1) to layer_norm(tokens)[target_idx]."""
    total, count = 0.0, 0
    b, m, n_t = target_idx.shape
    for i in range(b):
        for j in range(m):
            for k in range(n_t):
                d = pred[i, j, k] - ref_layer_norm(tokens[i, target_idx[i, j, k]])
                total = total + torch.where(d.abs() < 1, 0.5 * d ** 2, d.abs() - 0.5).sum()
                count += d.numel()
    return total / count


def test_loss_value_and_gradient_equal_the_official_formula():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 16, 6, dtype=torch.float64, generator=g) * 3 + 1
    target_idx = torch.randint(0, 16, (3, 2, 4), generator=g)
    pred = torch.randn(3, 2, 4, 6, dtype=torch.float64, generator=g) * 2  # both branches of smooth L1
    p1, p2 = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
    got = ijepa_loss(p1, ijepa_targets(tokens, target_idx))
    want = ref_ijepa_loss(p2, tokens, target_idx)
    got.backward()
    want.backward()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-12, atol=1e-12)


def test_targets_carry_no_gradient():
    tokens = torch.randn(2, 8, 4, requires_grad=True)
    assert not ijepa_targets(tokens, torch.zeros(2, 1, 3, dtype=torch.long)).requires_grad


def test_predictor_without_blocks_predicts_from_the_mask_token_and_the_target_position():
    """[IJ vision_transformer.py L306-326]: queries are mask_token + pos[target]; with no blocks each output is
    proj(norm(query))."""
    torch.manual_seed(0)
    pred = JEPAPredictor((4, 4), embed_dim=8, dim=16, depth=0, heads=2).double()
    context_idx = torch.tensor([[0, 1, 2], [5, 6, 7]])
    target_idx = torch.tensor([[[9, 10], [13, 14]], [[0, 3], [12, 15]]])
    got = pred(torch.randn(2, 3, 8, dtype=torch.float64), context_idx, target_idx)
    assert got.shape == (2, 2, 2, 8)
    for b, m, k in [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)]:
        want = pred.proj(pred.norm(pred.mask_token[0, 0] + pred.pos_embed[0, target_idx[b, m, k]]))
        torch.testing.assert_close(got[b, m, k], want)


def test_predictor_init_scales_each_blocks_output_projections_by_its_depth():
    """[IJ vision_transformer.py L264-270]: trunc-normal(0.02) weights, attn.proj and mlp.fc2 of block l divided
    by sqrt(2 l)."""
    torch.manual_seed(0)
    pred = JEPAPredictor((8, 8), embed_dim=64, dim=128, depth=3, heads=4)
    std = 0.02  # trunc_normal_'s bounds a=-2, b=2 are absolute: 100 standard deviations, no visible truncation
    for layer, blk in enumerate(pred.blocks, start=1):
        for w in (blk.attn.proj.weight, blk.mlp.fc2.weight):
            assert w.std().item() == pytest.approx(std / math.sqrt(2 * layer), rel=0.05)
        assert blk.attn.qkv.weight.std().item() == pytest.approx(std, rel=0.05)
        assert blk.attn.qkv.bias.abs().max() == 0


def test_each_target_block_is_its_own_sequence_with_the_context_of_its_image():
    torch.manual_seed(0)
    pred = JEPAPredictor((4, 4), embed_dim=8, dim=16, depth=2, heads=2).double()
    ctx = torch.randn(2, 3, 8, dtype=torch.float64)
    ctx_idx = torch.tensor([[0, 1, 2], [5, 6, 7]])
    tgt = torch.tensor([[[9, 10], [13, 14]], [[0, 3], [12, 15]]])
    out = pred(ctx, ctx_idx, tgt)
    other = tgt.clone()
    other[:, 1] = torch.tensor([4, 8])  # another second block: the first block's predictions stay the same
    torch.testing.assert_close(pred(ctx, ctx_idx, other)[:, 0], out[:, 0])
    alone = pred(ctx[:1], ctx_idx[:1], tgt[:1, :1])  # one image, one block: the same numbers
    torch.testing.assert_close(alone[0, 0], out[0, 0])
    changed = ctx.clone()
    changed[1] += 1
    moved = pred(changed, ctx_idx, tgt)
    torch.testing.assert_close(moved[0], out[0])  # images do not see each other
    assert (moved[1] - out[1]).abs().max() > 1e-8  # ...but each sees its own context (float64 round-off: 1e-16)


def test_training_step_regresses_the_target_encoder_tokens_of_the_target_blocks(monkeypatch):
    import ssl_bench.methods.ijepa as ijepa_module

    torch.manual_seed(0)
    m = create_method("ijepa", tiny_vit(), **SMALL).double()
    with torch.no_grad():  # make the target encoder differ from the context encoder
        for p in m.target_backbone.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    ctx = torch.tensor([[0, 1, 2, 3, 4, 5], [8, 9, 10, 11, 12, 13]])
    tgt = torch.tensor([[[27, 28, 35, 36]] * 4, [[50, 51, 58, 59]] * 4])
    monkeypatch.setattr(ijepa_module, "multiblock_masks", lambda b, spec, g: (ctx, tgt))
    got = m([x])["loss"]
    got.backward()
    p = m.backbone.num_prefix_tokens
    pred = m.predictor(m.backbone.forward_tokens(x, ctx)[:, p:], ctx, tgt)
    want = ref_ijepa_loss(pred, m.target_backbone.forward_tokens(x)[:, p:], tgt)
    torch.testing.assert_close(got, want)
    assert all(q.grad is None for q in m.target_backbone.parameters())  # EMA only
    assert m.backbone.blocks[0].attn.qkv.weight.grad.abs().max() > 0
    assert m.predictor.mask_token.grad.abs().max() > 0


def test_ema_is_the_official_linear_schedule():
    m = create_method("ijepa", tiny_vit(), **SMALL)
    total, (ema0, ema1) = 40, (0.996, 1.0)
    official = [ema0 + i * (ema1 - ema0) / total for i in range(total + 1)]  # [IJ src/train.py L228-229]
    assert [m.momentum_at(k, total) for k in range(total + 1)] == pytest.approx(official, abs=1e-15)
    assert m.momentum_pairs() == [(m.backbone, m.target_backbone)]


def test_evaluations_probe_the_average_pooled_target_encoder():
    m = create_method("ijepa", tiny_vit(), **SMALL).eval()
    assert m.encoder() is m.target_backbone
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        tokens = m.target_backbone.forward_tokens(x)[:, m.target_backbone.num_prefix_tokens:]
        torch.testing.assert_close(m.encoder()(x), tokens.mean(1))
    context = create_method("ijepa", tiny_vit(), eval_encoder="context", eval_pool="token", **SMALL)
    assert context.encoder() is context.backbone and context.backbone.global_pool == "token"


def test_official_recipe():
    """[IJ configs/in1k_vith14_ep300.yaml, src/helper.py]: blocks, predictor 12 x 384 with the encoder's heads,
    AdamW lr 1e-3 at batch 2048 (cosine to 1e-6), wd 0.04 -> 0.4, 40 warmup epochs, crop 0.3-1, no flips."""
    hp = IJEPA.defaults
    assert (hp["context_scale"], hp["target_scale"], hp["target_aspect"], hp["num_targets"], hp["min_keep"]) == \
        ([0.85, 1.0], [0.15, 0.2], [0.75, 1.5], 4, 10)
    r = IJEPA.optim_recipe()
    assert (r["optimizer"], r["weight_decay"], r["weight_decay_end"], r["min_lr"], r["warmup_epochs"]) == \
        ("adamw", 0.04, 0.4, 1e-6, 40)
    assert r["base_lr"] * 2048 / 256 == pytest.approx(1e-3)
    (view,) = IJEPA.view_recipes(hp)
    assert view["crop_scale"] == [0.3, 1.0] and view["flip_p"] == 0 and view["jitter_p"] == 0
    m = IJEPA(create_backbone("vit_tiny_patch16_224", in_chans=3, image_size=64, patch_size=4, depth=1))
    assert len(m.predictor.blocks) == 12 and m.predictor.embed.out_features == 384
    assert m.predictor.blocks[0].attn.num_heads == m.backbone.blocks[0].attn.num_heads == 3
    assert m.predictor.proj.out_features == m.backbone.embed_dim
    assert IJEPA.presets["ijepa-300ep"].batch_size == 2048


def test_bad_settings_fail_with_one_line_naming_the_field():
    with pytest.raises(UserError, match="target_scale"):
        create_method("ijepa", tiny_vit(), target_scale=[0.3, 0.2])
    with pytest.raises(UserError, match="eval_encoder"):
        create_method("ijepa", tiny_vit(), eval_encoder="online")
    with pytest.raises(UserError, match="min_keep 10 needs contexts"):  # 4x4 grid: the context is at most 3x3
        create_method("ijepa", tiny_vit(patch_size=4), min_keep=10, pred_dim=16, pred_depth=1)
    with pytest.raises(UserError, match="pred_dim 18"):
        create_method("ijepa", tiny_vit(), pred_dim=18, min_keep=4)
    resnet = create_backbone("resnet18", in_chans=1, image_size=16, channels=[8, 8, 8, 8])
    with pytest.raises(UserError, match="ijepa needs a ViT backbone"):
        create_method("ijepa", resnet)


@pytest.mark.slow
def test_a_few_engine_steps_on_digits_lower_the_loss(tmp_path):
    method, losses = train_with_engine("ijepa", tmp_path, {"pred_dim": 32, "pred_depth": 1, "min_keep": 4},
                                       base_lr=2e-3)
    assert losses[-1] < 0.95 * losses[0], losses
    assert all(math.isfinite(v) for v in losses)
    with torch.no_grad():
        feats = method.encoder().eval()(torch.randn(8, 1, 16, 16))
    assert feats.shape == (8, 64) and torch.isfinite(feats).all() and feats.std(0).mean() > 0
