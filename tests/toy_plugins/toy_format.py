"""A toy checkpoint format plugin: the encoder under "toy_encoder", beside training state that is ignored."""
from ssl_bench import register_checkpoint_format


def _is_toy(ckpt):
    return isinstance(ckpt.get("toy_encoder"), dict)


@register_checkpoint_format("toy_nested", detect=_is_toy, priority=1)
def toy_nested(ckpt):
    """{"toy_encoder": state dict, ...}: everything else ignored"""
    return dict(ckpt["toy_encoder"]), [k for k in ckpt if k != "toy_encoder"]
