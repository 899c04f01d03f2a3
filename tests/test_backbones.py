"""timm backbones: the small-image stem and a stem_width that timm's single-conv ResNet stem ignores."""
import pytest
import torch

from ssl_bench.backbones import create_backbone
from ssl_bench.errors import UserError


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_small_stem_is_3x3_stride_1_without_maxpool():
    m = create_backbone("resnet18", in_chans=3, image_size=32, channels=[16, 32, 64, 128])
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert isinstance(m.maxpool, torch.nn.Identity)
    # the 4 stages keep 32 -> 32, 16, 8, 4: the pooled map before the head is 4x4
    assert m.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 128, 4, 4)


def test_stem_width_narrows_the_single_conv_stem_by_the_hand_counted_parameters():
    wide = create_backbone("resnet18", in_chans=3, image_size=32, channels=[16, 32, 64, 128])
    narrow = create_backbone("resnet18", in_chans=3, image_size=32, channels=[16, 32, 64, 128], stem_width=16)
    assert wide.conv1.out_channels == 64  # timm builds 64 whatever stem_width says
    assert narrow.conv1.out_channels == 16 and narrow.bn1.num_features == 16
    # 64-wide: conv1 3*64*9, bn1 2*64, layer1[0].conv1 64*16*9, shortcut conv 64*16 (its BN is the same)
    # 16-wide: conv1 3*16*9, bn1 2*16, layer1[0].conv1 16*16*9, shortcut conv 16*16
    expected = (3 * 64 * 9 + 2 * 64 + 64 * 16 * 9 + 64 * 16) - (3 * 16 * 9 + 2 * 16 + 16 * 16 * 9 + 16 * 16)
    assert _params(wide) - _params(narrow) == expected == 9072


def test_narrow_stem_gets_gradients_and_keeps_the_feature_size():
    torch.manual_seed(0)
    m = create_backbone("resnet18", in_chans=1, image_size=16, channels=[64, 32, 32, 32], stem_width=8)
    # channels[0] == 64 had an identity shortcut in block 1; with an 8-wide stem it needs a projection
    assert m.layer1[0].downsample is not None
    out = m(torch.randn(4, 1, 16, 16))
    assert out.shape == (4, m.num_features) == (4, 32)
    out.square().mean().backward()
    assert all(p.grad is not None for p in m.parameters())
    # timm zero-inits each block's last BN, so inside blocks only the shortcuts carry gradient at step 0;
    # the rebuilt stem and projection must be among them
    for name in ("conv1.weight", "bn1.weight", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight"):
        assert m.get_parameter(name).grad.abs().sum() > 0, name


def test_bottleneck_resnet_and_deep_stem():
    r50 = create_backbone("resnet50", in_chans=3, image_size=32, stem_width=16)
    assert r50.conv1.out_channels == 16 and r50.layer1[0].conv1.in_channels == 16
    assert r50(torch.randn(2, 3, 32, 32)).shape == (2, 2048)
    deep = create_backbone("resnet18", in_chans=3, image_size=32, stem_type="deep", stem_width=16)
    assert deep.conv1[0].out_channels == 16  # timm's own deep stem reads stem_width
    assert deep(torch.randn(2, 3, 32, 32)).shape == (2, 512)


def test_stem_width_with_pretrained_weights_is_refused():
    with pytest.raises(UserError, match="stem_width=16 with pretrained=true"):
        create_backbone("resnet18", in_chans=3, image_size=32, stem_width=16, pretrained=True)
