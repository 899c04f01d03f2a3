"""timm ViTs as backbones (backbones/vit.py): the suite's image size, pooled features equal to timm's own model,
masked forward_tokens against a computation written here, spatial tokens of any backbone."""
import pytest
import timm
import torch

from ssl_bench.backbones import create_backbone, feature_tokens, freeze_patch_embed
from ssl_bench.errors import UserError

VIT = "vit_tiny_patch16_224"


def _tiny_vit(**kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_backbone(VIT, in_chans=3, image_size=32, patch_size=4, depth=2, **kwargs).eval()


def _plain_timm(net: torch.nn.Module, **kwargs) -> torch.nn.Module:
    """timm's own VisionTransformer with the same weights (no ssl-bench methods)."""
    ref = timm.create_model(VIT, num_classes=0, img_size=32, patch_size=4, depth=2, **kwargs).eval()
    assert type(ref) is timm.models.VisionTransformer
    ref.load_state_dict(net.state_dict())
    return ref


def test_the_suite_image_size_reaches_timm_and_the_attributes_describe_the_grid():
    net = create_backbone(VIT, in_chans=1, image_size=48)  # img_size not given: the suite's 48
    assert net.patch_embed.img_size == (48, 48)
    assert (net.patch_size, net.grid_size, net.num_patches) == (16, (3, 3), 9)
    assert (net.num_prefix_tokens, net.embed_dim, net.num_features) == (1, 192, 192)
    assert net(torch.randn(2, 1, 48, 48)).shape == (2, 192)
    given = create_backbone(VIT, in_chans=3, image_size=48, img_size=64)  # given by the suite's kwargs: kept
    assert given.patch_embed.img_size == (64, 64)


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_forward_and_state_dict_keys_equal_timms_own_model(pool):
    net = _tiny_vit(global_pool=pool)
    # ssl-bench keeps the final norm on the tokens for avg pooling (timm's fc_norm=False)
    ref = _plain_timm(net, global_pool=pool, **({"fc_norm": False} if pool == "avg" else {}))
    assert list(net.state_dict()) == list(ref.state_dict())
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), ref(x), atol=1e-6)
        tokens = ref.forward_features(x)  # timm: final-normed tokens
        assert torch.allclose(net.forward_tokens(x), tokens, atol=1e-6)
        expected = tokens[:, 0] if pool == "token" else tokens[:, 1:].mean(1)
        assert torch.allclose(net.pool(tokens), expected, atol=1e-6)


def test_forward_tokens_with_keep_equals_the_blocks_run_on_the_gathered_tokens():
    net = _tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    g = torch.Generator().manual_seed(1)
    keep = torch.stack([torch.randperm(64, generator=g)[:16] for _ in range(2)])  # 25% of 8x8 patches
    with torch.no_grad():
        # patches by hand: 4x4 pixel blocks, row-major, through the patch projection's weights
        w, b = net.patch_embed.proj.weight, net.patch_embed.proj.bias
        blocks = x.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, C, 8, 8, 4, 4)
        patches = blocks.permute(0, 2, 3, 1, 4, 5).reshape(2, 64, 3 * 16)
        emb = patches @ w.reshape(192, -1).T + b + net.pos_embed[:, 1:]
        kept = torch.stack([emb[i, keep[i]] for i in range(2)])
        cls = (net.cls_token + net.pos_embed[:, :1]).expand(2, -1, -1)
        h = torch.cat([cls, kept], 1)
        for block in net.blocks:
            h = block(h)
        expected = torch.nn.functional.layer_norm(h, (192,), net.norm.weight, net.norm.bias, eps=1e-6)
        got = net.forward_tokens(x, keep)
    assert got.shape == (2, 17, 192)
    assert torch.allclose(got, expected, atol=1e-5)
    everything = torch.arange(64).expand(2, -1)
    assert torch.allclose(net.forward_tokens(x, everything), net.forward_tokens(x), atol=1e-6)


def test_keep_of_the_wrong_shape_is_refused():
    net = _tiny_vit()
    with pytest.raises(ValueError, match="keep: expected a"):
        net.forward_tokens(torch.randn(2, 3, 32, 32), torch.zeros(3, 4, dtype=torch.long))


def test_feature_tokens_of_a_resnet_are_its_last_map_whose_mean_is_its_feature():
    torch.manual_seed(0)
    net = create_backbone("resnet18", in_chans=3, image_size=32, channels=[8, 8, 8, 16]).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = feature_tokens(net, x)
        fmap = net.forward_features(x)
        assert tokens.shape == (2, 16, 16)  # 4x4 positions of 16 channels
        assert torch.equal(tokens[:, 5], fmap[:, :, 1, 1])  # row-major: position 5 is (1, 1)
        assert torch.allclose(tokens.mean(1), net(x), atol=1e-6)


def test_feature_tokens_of_a_vit_drop_the_prefix_unless_asked():
    net = _tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert feature_tokens(net, x).shape == (2, 64, 192)
        assert torch.equal(feature_tokens(net, x, include_prefix=True)[:, 1:], feature_tokens(net, x))


def test_frozen_patch_embed_gets_no_gradient_and_needs_a_vit():
    net = _tiny_vit()
    freeze_patch_embed(net)
    net(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in net.patch_embed.parameters())
    assert net.blocks[0].attn.qkv.weight.grad is not None
    with pytest.raises(UserError, match="needs a ViT backbone"):
        freeze_patch_embed(create_backbone("resnet18", in_chans=3, image_size=32, channels=[8, 8, 8, 8]))


def test_a_pooling_other_than_token_or_avg_is_one_line():
    with pytest.raises(UserError, match="global_pool 'max'; allowed: token or avg"):
        _tiny_vit(global_pool="max")
