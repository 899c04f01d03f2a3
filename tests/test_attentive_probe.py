"""attentive_probe: V-JEPA's attentive pooler against a float64 numpy re-implementation of its formula, tokens
of ViTs and ResNets from one pass, and the protocol on digits with tiny frozen backbones."""
import copy

import numpy as np
import pytest
import torch

from ssl_bench.backbones import create_backbone, feature_tokens
from ssl_bench.create import create_dataset
from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext
from ssl_bench.evalkit.attentive import AttentiveClassifier, default_heads
from ssl_bench.evalkit.feature_store import encode
from ssl_bench.evalkit.features import feature_cache, freeze
from ssl_bench.registry import EVALUATIONS, load_plugins

SIZE = 16


def _layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


def reference_logits(model: AttentiveClassifier, tokens: np.ndarray) -> np.ndarray:
    """V-JEPA's CrossAttentionBlock + linear head written out in float64: q = W_q query, (k, v) = W_kv LN(x),
    per head softmax(q k^T / sqrt(d)) v, output projection, residual; residual MLP on LN(query); linear."""
    p = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    h = model.pooler.num_heads
    b, n, c = tokens.shape
    d = c // h
    x = _layer_norm(tokens, p["pooler.norm1.weight"], p["pooler.norm1.bias"])
    query = p["pooler.query"][0, 0]
    q = query @ p["pooler.q.weight"].T + p["pooler.q.bias"]  # (c,)
    kv = x @ p["pooler.kv.weight"].T + p["pooler.kv.bias"]  # (b, n, 2c)
    k, v = kv[..., :c], kv[..., c:]
    heads = []
    for j in range(h):
        s = np.einsum("d,bnd->bn", q[j * d:(j + 1) * d], k[..., j * d:(j + 1) * d]) / np.sqrt(d)
        a = np.exp(s - s.max(1, keepdims=True))
        a /= a.sum(1, keepdims=True)
        heads.append(np.einsum("bn,bnd->bd", a, v[..., j * d:(j + 1) * d]))
    z = query + np.concatenate(heads, -1) @ p["pooler.proj.weight"].T + p["pooler.proj.bias"]
    y = _layer_norm(z, p["pooler.norm2.weight"], p["pooler.norm2.bias"])
    y = _gelu(y @ p["pooler.mlp.0.weight"].T + p["pooler.mlp.0.bias"]) @ p["pooler.mlp.2.weight"].T
    z = z + y + p["pooler.mlp.2.bias"]
    return z @ p["linear.weight"].T + p["linear.bias"]


@pytest.mark.parametrize("dim,heads", [(8, 2), (24, 3)])
def test_head_matches_the_formula_in_float64(dim, heads):
    model = AttentiveClassifier(dim, 5, heads, seed=3).double()
    with torch.no_grad():  # non-trivial norms and biases, so every term of the formula shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    tokens = np.random.default_rng(0).normal(size=(4, 7, dim))
    got = model(torch.from_numpy(tokens)).detach().numpy()
    np.testing.assert_allclose(got, reference_logits(model, tokens), rtol=1e-9, atol=1e-10)


def test_init_follows_vjepa():
    model = AttentiveClassifier(64, 10, 1, seed=0)
    w = model.pooler.kv.weight
    assert w.abs().max() <= 2 * 0.02 + 1e-7 and abs(float(w.detach().std()) - 0.02) < 0.004  # truncated N(0, 0.02)
    ratio = float(model.pooler.proj.weight.detach().std() / model.pooler.q.weight.detach().std())
    assert abs(ratio - 2 ** -0.5) < 0.1  # output projections divided by sqrt(2 * layer)
    assert all(float(m.bias.abs().sum()) == 0 for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert [default_heads(c) for c in (8, 192, 384, 768, 100)] == [1, 3, 6, 12, 1]


def _tiny(kind: str):
    torch.manual_seed(0)
    if kind == "vit":
        return create_backbone("vit_tiny_patch16_224", in_chans=1, image_size=SIZE, patch_size=4, embed_dim=24,
                               depth=2, num_heads=3)
    return create_backbone("resnet18", in_chans=1, image_size=SIZE, channels=[8, 8, 8, 8])


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_one_pass_gives_the_tokens_and_the_pooled_features(kind):
    net = freeze(_tiny(kind))
    x = torch.randn(3, 1, SIZE, SIZE)
    with torch.no_grad():
        got = encode(net, x, ("pooled", "tokens"))
        torch.testing.assert_close(got["pooled"], net(x).flatten(1))
        torch.testing.assert_close(got["tokens"], feature_tokens(net, x))
    n_tokens = (SIZE // 4) ** 2 if kind == "vit" else SIZE * SIZE // 64  # 4 px patches / stride-8 ResNet map
    assert got["tokens"].shape == (3, n_tokens, net.num_features)


def context(kind: str, tmp_path) -> EvalContext:
    load_plugins()
    bundle = create_dataset("digits")
    enc = freeze(_tiny(kind))
    get = lambda n: bundle  # noqa: E731
    feats = feature_cache(enc, get, image_size=SIZE, in_chans=1, mean=bundle.mean, std=bundle.std,
                          device=torch.device("cpu"))
    return EvalContext(encoder=enc, feature_dim=enc.num_features, method_needs_labels=False, seed=0,
                       device=torch.device("cpu"), pretrain=bundle, image_size=SIZE, in_chans=1, mean=bundle.mean,
                       std=bundle.std, out_dir=str(tmp_path), get_dataset=get, features=feats,
                       new_encoder=lambda: _tiny(kind))


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_probe_on_digits_learns_from_frozen_tokens(kind, tmp_path):
    ctx = context(kind, tmp_path)
    before = copy.deepcopy(ctx.encoder.state_dict())
    ev = EVALUATIONS.get("attentive_probe")(lrs=[1e-2, 1e-1], epochs=8, batch_size=64)
    rows = ev.evaluate(ctx)
    by = {r["metric"]: r for r in rows}
    assert set(by) == {"top1", "top5"} and all(r["protocol"] == "attentive_probe" for r in rows)
    chance = 100 / ctx.pretrain.num_classes
    assert by["top1"]["value"] > 3 * chance, by["top1"]  # a random frozen encoder's tokens still separate digits
    assert by["top5"]["value"] >= by["top1"]["value"]
    extra = by["top1"]["extra"]
    assert extra["lr"] in (1e-2, 1e-1) and len(extra["val_curve"]) == 2
    assert extra["n_test"] == len(ctx.pretrain.test) and extra["token_dim"] == ctx.feature_dim
    tokens, _ = ctx.features("digits", "test", kind="tokens")
    assert tokens.dtype == torch.float16 and tokens.shape[:2] == (len(ctx.pretrain.test), extra["num_tokens"])
    after = ctx.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # frozen: weights and BN statistics unchanged
    rec = ev.recipe({})
    assert rec["select"] == "val" and rec["head"] == "vjepa_attentive_pooler"


def test_the_chosen_lr_is_the_best_on_val(tmp_path):
    ctx = context("resnet", tmp_path)
    rows = EVALUATIONS.get("attentive_probe")(lrs=[1e-6, 3e-2], epochs=4, batch_size=128).evaluate(ctx)
    extra = rows[0]["extra"]
    best = max(extra["val_curve"], key=lambda c: c[1])
    assert extra["lr"] == best[0] == 3e-2  # lr 1e-6 barely moves the head from its init


@pytest.mark.parametrize("params,field", [({"lrs": []}, "lrs"), ({"epochs": 0}, "epochs"),
                                          ({"weight_decay": -1}, "weight_decay"), ({"refit": "yes"}, "refit")])
def test_bad_params_name_the_field(params, field):
    load_plugins()
    with pytest.raises(UserError, match=f"params.{field}"):
        EVALUATIONS.get("attentive_probe")(**params)


def test_heads_must_divide_the_token_width(tmp_path):
    ctx = context("resnet", tmp_path)  # width 8
    with pytest.raises(UserError, match="num_heads = 3.*divisor of 8"):
        EVALUATIONS.get("attentive_probe")(num_heads=3, epochs=1).evaluate(ctx)
