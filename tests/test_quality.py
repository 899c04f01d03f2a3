"""quality: RankMe, LiDAR and alpha-ReQ against direct numpy computations (float64) of the papers' formulas, their
behaviour on features whose answer is known, and the protocol on digits with a tiny frozen ViT."""
import math

import numpy as np
import pytest
import torch

from ssl_bench.backbones import create_backbone
from ssl_bench.create import create_dataset
from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext
from ssl_bench.evalkit.features import feature_cache, freeze
from ssl_bench.evalkit.quality import alpha_req, lidar, rankme
from ssl_bench.registry import EVALUATIONS, load_plugins


def np_rankme(z, eps=1e-7):
    s = np.linalg.svd(z, compute_uv=False)
    p = s / np.abs(s).sum() + eps
    return float(np.exp(-np.sum(p * np.log(p))))


def np_lidar(views, delta=1e-4, eps=1e-7):
    """Thilak et al. 2024, Sec. 3, written out with loops: classes = images, samples = their views."""
    q, n, d = views.shape
    mu_c = np.stack([views[:, i].mean(0) for i in range(n)])
    mu = mu_c.mean(0)
    s_b = sum(np.outer(mu_c[i] - mu, mu_c[i] - mu) for i in range(n)) / (n - 1)
    s_w = sum(np.outer(views[j, i] - mu_c[i], views[j, i] - mu_c[i]) for i in range(n) for j in range(q))
    s_w = s_w / (n * (q - 1)) + delta * np.eye(d)
    w, u = np.linalg.eigh(s_w)
    root = u @ np.diag(w ** -0.5) @ u.T
    lam = np.clip(np.linalg.eigvalsh(root @ s_b @ root), 0, None)
    p = lam / lam.sum() + eps
    return float(np.exp(-np.sum(p * np.log(p))))


def np_alpha(z, floor=1e-12):
    lam = np.sort(np.linalg.eigvalsh(np.cov(z, rowvar=False)))[::-1]
    lam = lam[lam > floor * lam[0]]
    slope, _ = np.polyfit(np.log(np.arange(1, len(lam) + 1)), np.log(lam), 1)
    return float(-slope)


RNG = np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(200, 16), (30, 64), (500, 5)])
def test_rankme_matches_numpy(shape):
    z = RNG.normal(size=shape) @ np.diag(np.linspace(0.1, 3, shape[1]))
    assert rankme(torch.from_numpy(z)) == pytest.approx(np_rankme(z), rel=1e-10)


def test_rankme_counts_the_directions_used():
    z = np.zeros((100, 10))
    z[:, :3], _ = np.linalg.qr(RNG.normal(size=(100, 3)))  # three orthonormal directions: equal singular values
    assert rankme(torch.from_numpy(z)) == pytest.approx(3, rel=1e-4)  # (eps on the 7 zero ones adds 1e-5)
    assert rankme(torch.ones(50, 8)) == pytest.approx(1, rel=1e-4)  # rank one: collapsed


@pytest.mark.parametrize("q,n,d", [(2, 10, 4), (5, 40, 12), (8, 6, 20)])
def test_lidar_matches_numpy(q, n, d):
    base = RNG.normal(size=(1, n, d)) * np.linspace(0.2, 2, d)
    views = base + 0.3 * RNG.normal(size=(q, n, d))
    assert lidar(torch.from_numpy(views)) == pytest.approx(np_lidar(views), rel=1e-8)


def test_lidar_counts_the_dimensions_that_tell_images_apart():
    def views(informative: int):
        v = np.repeat(RNG.normal(size=(1, 200, 8)), 10, axis=0) + 0.05 * RNG.normal(size=(10, 200, 8))
        v[..., informative:] = RNG.normal(size=(10, 200, 8 - informative))  # these change with the view only
        return torch.from_numpy(v)

    got = [lidar(views(k)) for k in (2, 4, 8)]
    assert got[0] < got[1] < got[2]
    assert got[0] == pytest.approx(2, abs=0.2) and got[2] == pytest.approx(8, abs=0.2)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_matches_numpy_and_recovers_a_power_law(alpha):
    d = 32
    q, _ = np.linalg.qr(RNG.normal(size=(d, d)))
    spectrum = np.arange(1, d + 1, dtype=float) ** -alpha
    z = RNG.normal(size=(20000, d)) * np.sqrt(spectrum) @ q.T  # covariance eigenvalues k^-alpha
    got = alpha_req(torch.from_numpy(z))
    assert got == pytest.approx(np_alpha(z), rel=1e-8)
    assert got == pytest.approx(alpha, abs=0.08)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="q >= 2 views"):
        lidar(torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="N x D"):
        rankme(torch.zeros(5))
    assert math.isnan(alpha_req(torch.ones(10, 4)))  # constant features: no spectrum


SIZE = 16


def vit_context(tmp_path) -> EvalContext:
    load_plugins()
    bundle = create_dataset("digits")
    torch.manual_seed(0)
    enc = freeze(create_backbone("vit_tiny_patch16_224", in_chans=1, image_size=SIZE, patch_size=4, embed_dim=24,
                                 depth=2, num_heads=3))
    get = lambda n: bundle  # noqa: E731
    feats = feature_cache(enc, get, image_size=SIZE, in_chans=1, mean=bundle.mean, std=bundle.std,
                          device=torch.device("cpu"))
    return EvalContext(encoder=enc, feature_dim=enc.num_features, method_needs_labels=False, seed=0,
                       device=torch.device("cpu"), pretrain=bundle, image_size=SIZE, in_chans=1, mean=bundle.mean,
                       std=bundle.std, out_dir=str(tmp_path), get_dataset=get, features=feats, new_encoder=None)


def test_protocol_on_digits_reports_the_three_metrics_of_its_features(tmp_path):
    ctx = vit_context(tmp_path)
    rows = EVALUATIONS.get("quality")(lidar_images=50, lidar_views=3).evaluate(ctx)
    by = {r["metric"]: r for r in rows}
    assert set(by) == {"rankme", "lidar", "alpha_req"} and {r["protocol"] for r in rows} == {"quality"}
    test_x, _ = ctx.features("digits", "test")
    assert by["rankme"]["value"] == pytest.approx(np_rankme(test_x.double().numpy()), rel=1e-8)
    assert by["alpha_req"]["value"] == pytest.approx(np_alpha(test_x.double().numpy()), rel=1e-6)
    views = np.stack([ctx.features("digits", "test/50", view=f"crop{i}")[0].double().numpy() for i in range(3)])
    assert views.shape == (3, 50, ctx.feature_dim)
    assert not np.allclose(views[0], views[1])  # different random crops
    assert by["lidar"]["value"] == pytest.approx(np_lidar(views), rel=1e-6)
    assert by["lidar"]["extra"]["lidar_images"] == 50 and by["rankme"]["extra"]["n_images"] == len(test_x)


def test_crop_views_are_reproducible(tmp_path):
    a = vit_context(tmp_path).features("digits", "test/20", view="crop1")[0]
    b = vit_context(tmp_path).features("digits", "test/20", view="crop1")[0]
    assert torch.equal(a, b)


@pytest.mark.parametrize("params,field", [({"split": "dev"}, "split"), ({"lidar_views": 1}, "lidar_views"),
                                          ({"lidar_images": 0}, "lidar_images"), ({"delta": 0}, "delta"),
                                          ({"eps": -1}, "eps")])
def test_bad_params_name_the_field(params, field):
    load_plugins()
    with pytest.raises(UserError, match=f"params.{field}"):
        EVALUATIONS.get("quality")(**params)
