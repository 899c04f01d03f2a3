"""Weighted kNN against a direct per-sample implementation, on real digits features."""
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ssl_bench.data.types import DatasetBundle, ImageSet
from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext
from ssl_bench.registry import EVALUATIONS
from ssl_bench.evalkit.knn import knn_predict


def _digits(project_to: int | None = None):
    x, y = load_digits(return_X_y=True)
    perm = np.random.RandomState(0).permutation(len(x))
    x, y = x[perm], y[perm]
    if project_to:  # a fixed random projection stands in for an encoder
        x = x @ np.random.RandomState(1).randn(64, project_to)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def _knn_loop(train_x, train_y, test_x, num_classes, k, t):
    """For each test point: cosine similarity to every train point, sort, sum exp(s/T) per class."""
    bank = train_x.numpy().astype(np.float64)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    labels = train_y.tolist()
    preds, all_votes = [], []
    for q in test_x.numpy().astype(np.float64):
        q = q / np.linalg.norm(q)
        sims = (bank @ q).tolist()
        nearest = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        votes = [0.0] * num_classes
        for i in nearest:
            votes[labels[i]] += math.exp(sims[i] / t)
        preds.append(max(range(num_classes), key=lambda c: votes[c]))
        all_votes.append(votes)
    return torch.tensor(preds), torch.tensor(all_votes, dtype=torch.float64)


@pytest.mark.parametrize("project_to", [None, 24])
@pytest.mark.parametrize("k,t", [(1, 0.07), (20, 0.1), (200, 0.07), (5000, 0.5)])
def test_knn_matches_direct_loop(project_to, k, t):
    x, y = _digits(project_to)
    train_x, train_y, test_x = x[:1000], y[:1000], x[1000:1200]
    scores = knn_predict(train_x, train_y, test_x, 10, k=k, temperature=t, chunk=64)
    preds, votes = _knn_loop(train_x, train_y, test_x, 10, min(k, 1000), t)  # k > bank: all of it
    assert torch.equal(scores.argmax(dim=1), preds)
    # Scores are the votes up to a per-row factor; compare them as shares of the row's total.
    torch.testing.assert_close(scores.double() / scores.double().sum(1, keepdim=True),
                               votes / votes.sum(1, keepdim=True), rtol=1e-4, atol=1e-6)


def test_knn_chunking_and_multilabel_form_agree():
    x, y = _digits(24)
    train_x, train_y, test_x = x[:1000], y[:1000], x[1000:1100]
    a = knn_predict(train_x, train_y, test_x, 10, k=50, temperature=0.07, chunk=7)
    b = knn_predict(train_x, train_y, test_x, 10, k=50, temperature=0.07, chunk=1000)
    onehot = torch.nn.functional.one_hot(train_y, 10).float()
    c = knn_predict(train_x, onehot, test_x, 10, k=50, temperature=0.07)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # different matmul blocking
    torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-6)


def _bundle(x_u8: torch.Tensor, y: torch.Tensor, metric: str = "top1") -> DatasetBundle:
    sets = [ImageSet(labels=y[s], images=x_u8[s]) for s in (slice(0, 1000), slice(1000, 1300), slice(1300, None))]
    return DatasetBundle("digits", *sets, num_classes=10, mean=(0.5,), std=(0.25,), native_size=8, metric=metric)


def make_context(feats: torch.Tensor, labels: torch.Tensor, metric: str = "top1") -> EvalContext:
    """A hand-built context whose `features` serves precomputed digits features by split."""
    images = torch.zeros(len(feats), 1, 8, 8, dtype=torch.uint8)  # unused: features are precomputed
    bundle = _bundle(images, labels, metric)
    splits = {"train": slice(0, 1000), "val": slice(1000, 1300), "test": slice(1300, None)}

    def features(name: str, split: str):
        assert name == "digits"
        return feats[splits[split]], labels[splits[split]]

    return EvalContext(encoder=torch.nn.Identity(), feature_dim=feats.shape[1],
                       method_needs_labels=False, seed=0, device=torch.device("cpu"), pretrain=bundle,
                       image_size=8, in_chans=1, mean=(0.5,), std=(0.25,), out_dir="/nonexistent",
                       get_dataset=lambda name: bundle, features=features, new_encoder=torch.nn.Identity)


def test_knn_plugin_rows_on_digits():
    x, y = _digits()
    ctx = make_context(x, y, metric="mean_per_class")
    rows = EVALUATIONS.get("knn")(k=20, temperature=0.1).evaluate(ctx)
    by_metric = {r["metric"]: r for r in rows}
    assert set(by_metric) == {"top1", "top5", "mean_per_class"}
    assert all(r["protocol"] == "knn" and r["eval_dataset"] == "digits" for r in rows)
    # Bank = the train split only; scored on the test split.
    preds, _ = _knn_loop(x[:1000], y[:1000], x[1300:], 10, 20, 0.1)
    assert by_metric["top1"]["value"] == pytest.approx(100 * (preds == y[1300:]).double().mean().item())
    assert by_metric["top1"]["value"] > 90  # kNN on raw digits pixels is ~97%
    assert by_metric["top1"]["extra"]["n_train"] == 1000


@pytest.mark.parametrize("params", [{"k": 0}, {"temperature": -1.0}, {"batch_size": 2.5}, {"k": True}])
def test_knn_bad_params_are_user_errors(params):
    with pytest.raises(UserError, match=f"params.{next(iter(params))}"):
        EVALUATIONS.get("knn")(**params)
