"""Published ViT checkpoint layouts (MAE, DINO, MoCo v3, I-JEPA) on random weights: a timm ViT's state dict is
written in each layout from the official repos' key names, loaded back through the `pretrained` path, and every
tensor compared; a position embedding of another grid is resampled as written here."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssl_bench.weights.formats import detect
from ssl_bench.create import create_backbone
from ssl_bench.weights.load import load_encoder
from ssl_bench.errors import UserError

VIT = "vit_tiny_patch16_224"
IJEPA_KW = {"class_token": False, "global_pool": "avg"}  # I-JEPA's ViT has no class token


def _vit(seed: int, image_size: int = 32, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_backbone(VIT, in_chans=3, image_size=image_size, patch_size=4, depth=2, **kwargs).eval()


def _plus(sd: dict, prefix: str, shift: float = 0.0) -> dict:
    return {f"{prefix}{k}": v + shift for k, v in sd.items()}


def _layouts(sd: dict[str, torch.Tensor]) -> dict[str, tuple[str, object]]:
    """name -> (format, checkpoint) for a ViT with a class token, written from each repo's saved keys."""
    rnd = torch.randn
    projector = {"head.0.weight": rnd(16, 192), "head.1.weight": rnd(16), "head.3.weight": rnd(8, 16)}
    return {
        # facebookresearch/mae misc.save_model: {"model": state_dict, "optimizer", "epoch", "scaler", "args"};
        # models_mae.py adds mask_token and decoder_* to the encoder's keys
        "mae_training": ("mae", {"model": {**sd, "mask_token": rnd(1, 1, 192), "decoder_embed.weight": rnd(16, 192),
                                           "decoder_pos_embed": rnd(1, 65, 16), "decoder_pred.weight": rnd(48, 16)},
                                 "epoch": 799}),
        "mae_released": ("mae", {"model": dict(sd)}),  # mae_pretrain_vit_base.pth: the encoder only
        "dino_backbone": ("timm", dict(sd)),  # dino_deitsmall16_pretrain.pth: plain keys (read as timm or dino)
        # dino main_dino.py save_dict: student (DDP: module.backbone / module.head), teacher (backbone / head)
        "dino_full": ("dino", {"student": {**_plus(sd, "module.backbone.", 1.0),
                                           "module.head.mlp.0.weight": rnd(16, 192)},
                               "teacher": {**_plus(sd, "backbone."), "head.mlp.0.weight": rnd(16, 192),
                                           "head.last_layer.weight_g": rnd(64, 1)}, "epoch": 100}),
        # moco-v3 main_moco.py save_checkpoint: {"epoch", "arch", "state_dict": DDP keys, "optimizer", "scaler"};
        # builder.py MoCo_ViT puts the projector in base_encoder.head
        "moco_v3": ("moco_v3", {"epoch": 300, "arch": "vit_small", "state_dict": {
            **_plus({**sd, **projector}, "module.base_encoder."), **_plus(sd, "module.momentum_encoder.", 1.0),
            "module.predictor.0.weight": rnd(16, 8)}}),
        "moco_v3_deit": ("mae", {"model": dict(sd)}),  # moco-v3 convert_to_deit.py output
    }


def _assert_same_tensors(net: torch.nn.Module, sd: dict[str, torch.Tensor]) -> None:
    got = net.state_dict()
    assert list(got) == list(sd)
    for k, v in sd.items():
        assert torch.equal(got[k], v), k


@pytest.mark.parametrize("name", list(_layouts({})))
def test_each_vit_layout_loads_every_tensor(tmp_path, name):
    src = _vit(seed=1)
    sd = src.state_dict()
    fmt, ckpt = _layouts(sd)[name]
    path = tmp_path / f"{name}.pth"
    torch.save(ckpt, path)
    assert detect(torch.load(path, weights_only=True)) == fmt
    for given in ("auto", fmt, *(["dino"] if name == "dino_backbone" else [])):
        net = _vit(seed=2)
        info = load_encoder(net, path, given)
        _assert_same_tensors(net, sd)
        assert info["keys_loaded"] == len(sd) and info["keys_missing"] == 0
    if name.startswith(("mae_training", "dino_full", "moco_v3")) and name != "moco_v3_deit":
        assert info["keys_ignored"] > 0  # decoder / student / momentum encoder and heads


@pytest.mark.parametrize("fmt, part, shift", [("ijepa", "target_encoder", 0.0), ("ijepa_context", "encoder", 1.0)])
def test_ijepa_layout_loads_the_target_or_the_context_encoder(tmp_path, fmt, part, shift):
    src = _vit(seed=1, **IJEPA_KW)
    sd = src.state_dict()
    assert "cls_token" not in sd and src.pos_embed.shape == (1, 64, 192)  # no prefix row, as in I-JEPA
    # ijepa src/train.py save_dict: encoder, predictor, target_encoder (each DDP: module.*), opt, epoch, ...
    ckpt = {"encoder": _plus(sd, "module.", 1.0), "target_encoder": _plus(sd, "module."),
            "predictor": {"module.predictor_embed.weight": torch.randn(16, 192), "module.mask_token":
                          torch.randn(1, 1, 16)}, "epoch": 300, "batch_size": 2048, "world_size": 16, "lr": 1e-3}
    path = tmp_path / "ijepa.pth.tar"
    torch.save(ckpt, path)
    assert detect(torch.load(path, weights_only=True)) == "ijepa"
    net = _vit(seed=2, **IJEPA_KW)
    load_encoder(net, path, fmt)
    _assert_same_tensors(net, {k: v + shift for k, v in sd.items()})
    with pytest.raises(UserError, match="missing, first 'cls_token'"):  # a ViT with a class token: refused
        load_encoder(_vit(seed=2), path, fmt)


def test_a_position_embedding_of_another_grid_is_resampled_bicubically(tmp_path):
    big = _vit(seed=1, image_size=64)  # 16x16 patches
    torch.save(big.state_dict(), tmp_path / "big.pth")
    small = _vit(seed=2, image_size=32)  # 8x8 patches
    info = load_encoder(small, tmp_path / "big.pth")
    assert "pos_embed: resampled from (1, 257, 192) to (1, 65, 192)" in info["input_adapted"]
    grid = big.pos_embed[:, 1:].reshape(1, 16, 16, 192).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(8, 8), mode="bicubic", antialias=True).permute(0, 2, 3, 1).reshape(1, 64, 192)
    assert torch.equal(small.pos_embed[:, :1], big.pos_embed[:, :1])  # the class token's row is kept
    assert torch.allclose(small.pos_embed[:, 1:], expected, atol=1e-6)
    assert torch.equal(small.blocks[1].mlp.fc2.weight, big.blocks[1].mlp.fc2.weight)
