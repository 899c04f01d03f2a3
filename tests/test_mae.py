"""MAE (methods/mae.py): patchify, the normalised-pixel loss and the decoder's position embedding against the
official formulas [MAE models_mae.py, util/pos_embed.py] written out here in float64, the decoder's token
placement, the wiring of training_step, the official recipe, and a few engine steps on digits."""
import math

import numpy as np
import pytest
import torch

from masked_image_helpers import Interrupted, interrupt_after, tiny_vit, train_with_engine
from ssl_bench.create import create_backbone, create_method
from ssl_bench.errors import UserError
from ssl_bench.methods.losses import mae_loss, patchify
from ssl_bench.methods.mae import MAE
from ssl_bench.methods.token_heads import MAEDecoder, sincos_2d


def ref_patchify(images: torch.Tensor, p: int) -> torch.Tensor:
    """Patch (i, j) -> row i * (W / p) + j; pixel (r, c) of channel ch -> column (r * p + c) * C + ch."""
    b, c, h, w = images.shape
    out = torch.empty(b, (h // p) * (w // p), p * p * c, dtype=images.dtype)
    for i in range(h // p):
        for j in range(w // p):
            for r in range(p):
                for col in range(p):
                    for ch in range(c):
                        out[:, i * (w // p) + j, (r * p + col) * c + ch] = images[:, ch, i * p + r, j * p + col]
    return out


def ref_mae_loss(pred, target, masked, norm_pix):
    """[MAE models_mae.py L198-214], one patch at a time: unbiased per-patch variance, eps 1e-6."""
    total, count = 0.0, 0
    for b in range(pred.shape[0]):
        for n in range(pred.shape[1]):
            if not masked[b, n]:
                continue
            t = target[b, n]
            if norm_pix:
                mu = t.sum() / t.numel()
                var = ((t - mu) ** 2).sum() / (t.numel() - 1)
                t = (t - mu) / torch.sqrt(var + 1e-6)
            total = total + ((pred[b, n] - t) ** 2).sum() / t.numel()
            count += 1
    return total / count


def test_patchify_equals_the_pixel_by_pixel_layout():
    x = torch.randn(2, 3, 8, 12, dtype=torch.float64)
    assert torch.equal(patchify(x, 4), ref_patchify(x, 4))


@pytest.mark.parametrize("norm_pix", [True, False])
def test_mae_loss_value_and_gradient_equal_the_official_formula(norm_pix):
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 10, 12, dtype=torch.float64, generator=g)
    target = torch.randn(3, 10, 12, dtype=torch.float64, generator=g) * 2 + 1
    masked = torch.rand(3, 10, generator=g) < 0.7
    p1, p2 = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
    got, want = mae_loss(p1, target, masked, norm_pix), ref_mae_loss(p2, target, masked, norm_pix)
    got.backward()
    want.backward()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-12, atol=1e-12)
    assert p1.grad[~masked].abs().max() == 0  # kept patches carry no loss


def ref_sincos_2d(dim: int, h: int, w: int) -> np.ndarray:
    """[MAE util/pos_embed.py L20-67] in numpy: meshgrid(w, h), first half from grid[0] (the column)."""
    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)), axis=0)
    return np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)


@pytest.mark.parametrize("dim, grid", [(16, (4, 4)), (64, (8, 8)), (32, (3, 5))])
def test_decoder_position_embedding_is_the_official_2d_sincos(dim, grid):
    np.testing.assert_allclose(sincos_2d(dim, grid).numpy(), ref_sincos_2d(dim, *grid), rtol=0, atol=1e-6)


def test_decoder_puts_kept_tokens_at_their_patches_and_mask_tokens_elsewhere():
    """With no blocks, patch n's output is pred(norm(embed(token) or mask_token, + pos[n])) [models_mae.py
    forward_decoder]: a check of the unshuffle, whatever the order of `keep`."""
    torch.manual_seed(0)
    dec = MAEDecoder((4, 4), embed_dim=8, dim=16, depth=0, heads=2, patch_dim=5, num_prefix=1).double()
    keep = torch.stack([torch.randperm(16)[:4] for _ in range(2)])
    tokens = torch.randn(2, 1 + 4, 8, dtype=torch.float64)
    got = dec(tokens, keep)
    assert got.shape == (2, 16, 5)
    for b in range(2):
        for n in range(16):
            hit = (keep[b] == n).nonzero()
            x = dec.embed(tokens[b, 1 + hit[0, 0]]) if len(hit) else dec.mask_token[0, 0]
            want = dec.pred(dec.norm(x + dec.pos_embed[0, n]))
            torch.testing.assert_close(got[b, n], want)


def test_training_step_is_the_loss_on_the_removed_patches_of_the_view(monkeypatch):
    import ssl_bench.methods.mae as mae_module

    torch.manual_seed(0)
    m = create_method("mae", tiny_vit(), decoder_dim=16, decoder_depth=1, decoder_heads=2).double()
    x = torch.randn(3, 1, 16, 16, dtype=torch.float64)
    keep = torch.stack([torch.randperm(64)[:16] for _ in range(3)])
    masked = torch.ones(3, 64, dtype=torch.bool).scatter(1, keep, False)
    monkeypatch.setattr(mae_module, "mae_random_masking", lambda b, n, r, g: (keep, masked))
    got = m([x])["loss"]
    pred = m.decoder(m.backbone.forward_tokens(x, keep), keep)
    torch.testing.assert_close(got, ref_mae_loss(pred, ref_patchify(x, 2), masked, True))


def test_default_masking_keeps_a_quarter_of_the_patches(monkeypatch):
    import ssl_bench.methods.mae as mae_module

    seen = []
    real = mae_module.mae_random_masking
    monkeypatch.setattr(mae_module, "mae_random_masking", lambda *a: seen.append(real(*a)) or seen[-1])
    m = create_method("mae", tiny_vit(), decoder_dim=16, decoder_depth=1, decoder_heads=2)
    m([torch.randn(2, 1, 16, 16)])
    m([torch.randn(2, 1, 16, 16)])
    (k1, m1), (k2, _) = seen
    assert k1.shape == (2, 16) and int(m1.sum()) == 2 * 48
    assert not torch.equal(k1, k2)  # a new mask every step


def test_official_recipe():
    """[MAE PRETRAIN.md, main_pretrain.py, models_mae.py]: ratio 0.75, norm_pix_loss, decoder 512 x 8 x 16 heads,
    AdamW blr 1.5e-4, wd 0.05, betas (0.9, 0.95), 40 warmup epochs, crop 0.2-1 + flip, one view."""
    r = MAE.optim_recipe()
    assert (r["optimizer"], r["base_lr"], r["weight_decay"], r["betas"], r["warmup_epochs"], r["min_lr"]) == \
        ("adamw", 1.5e-4, 0.05, [0.9, 0.95], 40, 0.0)
    assert r["weight_decay_end"] is None and r["clip_grad"] is None
    (view,) = MAE.view_recipes(MAE.defaults)
    assert view["crop_scale"] == [0.2, 1.0] and view["flip_p"] == 0.5 and view["interpolation"] == "bicubic"
    assert view["jitter_p"] == view["grayscale_p"] == view["blur_p"] == view["solarize_p"] == 0
    m = MAE(create_backbone("vit_tiny_patch16_224", in_chans=3, image_size=32, patch_size=4, depth=1))
    assert m.hparams["mask_ratio"] == 0.75 and m.hparams["norm_pix_loss"] is True
    blocks = m.decoder.blocks
    assert len(blocks) == 8 and blocks[0].attn.num_heads == 16 and m.decoder.embed.out_features == 512
    assert m.decoder.pred.out_features == 4 * 4 * 3
    assert not m.decoder.pos_embed.requires_grad  # fixed sin-cos [models_mae.py L51]
    assert m.encoder() is m.backbone and m.momentum_pairs() == []
    assert {p.batch_size for p in MAE.presets.values()} == {4096}


def test_evaluations_see_the_class_token_by_default_or_the_mean_of_the_patch_tokens():
    """main_linprobe.py probes the class token (global_pool off); eval_pool avg probes the mean patch token."""
    x = torch.randn(2, 1, 16, 16)
    for pool in ("token", "avg"):
        m = create_method("mae", tiny_vit(), decoder_dim=16, decoder_depth=1, decoder_heads=2, eval_pool=pool).eval()
        with torch.no_grad():
            tokens = m.backbone.forward_tokens(x)
            expected = tokens[:, 0] if pool == "token" else tokens[:, m.backbone.num_prefix_tokens:].mean(1)
            torch.testing.assert_close(m.encoder()(x), expected)
    with pytest.raises(UserError, match="eval_pool"):
        create_method("mae", tiny_vit(), eval_pool="max")


def test_bad_settings_fail_with_one_line_naming_the_field():
    with pytest.raises(UserError, match="mask_ratio"):
        create_method("mae", tiny_vit(), mask_ratio=1.0)
    with pytest.raises(UserError, match="decoder_dim 18"):
        create_method("mae", tiny_vit(), decoder_dim=18, decoder_heads=2)
    resnet = create_backbone("resnet18", in_chans=1, image_size=16, channels=[8, 8, 8, 8])
    with pytest.raises(UserError, match="mae needs a ViT backbone"):
        create_method("mae", resnet)


@pytest.mark.slow
def test_a_few_engine_steps_on_digits_lower_the_loss(tmp_path):
    method, losses = train_with_engine("mae", tmp_path, {"decoder_dim": 32, "decoder_depth": 1,
                                                          "decoder_heads": 2}, base_lr=2e-3)
    assert losses[-1] < 0.7 * losses[0], losses
    with torch.no_grad():
        feats = method.encoder().eval()(torch.randn(8, 1, 16, 16))
    assert feats.shape == (8, 64) and torch.isfinite(feats).all() and feats.std(0).mean() > 0
    assert all(math.isfinite(v) for v in losses)


@pytest.mark.slow
def test_a_resumed_run_draws_the_same_masks_and_ends_in_the_same_weights(tmp_path):
    """The masks come from the run seed and a step count saved with the model: training 3 epochs straight and
    training 1, stopping, and resuming give the same weights."""
    params = {"decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2}
    straight, _ = train_with_engine("mae", tmp_path / "a", params, base_lr=2e-3, epochs=3)
    with pytest.raises(Interrupted):
        train_with_engine("mae", tmp_path / "b", params, base_lr=2e-3, epochs=3, on_epoch_end=interrupt_after(1))
    resumed, _ = train_with_engine("mae", tmp_path / "b", params, base_lr=2e-3, epochs=3, resume=True)
    want, got = straight.state_dict(), resumed.state_dict()
    assert int(got["mask_clock.step"]) == 3 * 4
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=key)
