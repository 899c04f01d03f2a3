"""L-BFGS logistic probe against scikit-learn's LogisticRegression on real digits features."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from ssl_bench.errors import UserError
from ssl_bench.evalkit.probe import fit_logistic, l2_grid, logistic_objective, score, standardize, sweep_logistic
from ssl_bench.registry import EVALUATIONS
from test_knn import make_context

TRAIN, VAL, TEST = slice(0, 1000), slice(1000, 1300), slice(1300, None)


def _features(dtype=torch.float64):
    """Digits through a fixed random projection to 32 dims (an encoder stand-in), split 1000/300/497."""
    x, y = load_digits(return_X_y=True)
    perm = np.random.RandomState(0).permutation(len(x))
    x = x[perm] @ np.random.RandomState(1).randn(64, 32)
    return torch.tensor(x, dtype=dtype), torch.tensor(y[perm])


def _sklearn(x, y, l2):
    """The same objective in scikit-learn's form: C * sum(loss) + ||W||^2 / 2 with C = 1 / (l2 * n)."""
    clf = LogisticRegression(C=1.0 / (l2 * len(x)), tol=1e-8, max_iter=5000)
    clf.fit(x.numpy(), y.numpy())
    return clf, torch.tensor(clf.coef_), torch.tensor(clf.intercept_)


def _acc(logits, y):
    return 100 * (logits.argmax(1) == y).double().mean().item()


@pytest.mark.parametrize("l2", [1e-1, 1e-3])
def test_fit_matches_sklearn_objective_and_accuracy(l2):
    x, y = _features()
    tr, te = standardize(x[TRAIN], x[TEST])
    w, b = fit_logistic(tr, y[TRAIN], l2)
    clf, ws, bs = _sklearn(tr, y[TRAIN], l2)
    ours = logistic_objective(tr, y[TRAIN], w, b, l2).item()
    theirs = logistic_objective(tr, y[TRAIN], ws, bs, l2).item()
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert abs(_acc(score(te, w, b), y[TEST]) - 100 * clf.score(te.numpy(), y[TEST].numpy())) <= 1.0


def test_float32_fit_close_to_float64():
    x, y = _features()
    tr = standardize(x[TRAIN])[0]
    w, b = fit_logistic(tr.float(), y[TRAIN], 1e-3)
    _, ws, bs = _sklearn(tr, y[TRAIN], 1e-3)
    ours = logistic_objective(tr, y[TRAIN], w.double(), b.double(), 1e-3).item()
    theirs = logistic_objective(tr, y[TRAIN], ws, bs, 1e-3).item()
    assert ours == pytest.approx(theirs, rel=1e-4)


def test_sweep_val_curve_matches_independent_fits():
    x, y = _features()
    tr, va = standardize(x[TRAIN], x[VAL])
    grid = l2_grid(1e-4, 1e1, 6)
    best, vals = sweep_logistic(tr, y[TRAIN], va, y[VAL], grid)
    # Independent: a cold-started scikit-learn fit per l2, scored on val (300 samples: 1 sample = 0.33 pt).
    expected = [100 * _sklearn(tr, y[TRAIN], l2)[0].score(va.numpy(), y[VAL].numpy()) for l2 in grid]
    assert np.allclose(vals, expected, atol=0.34)
    top = max(vals)
    assert best == max(l2 for l2, v in zip(grid, vals) if v == top)  # ties go to the strongest l2
    assert min(vals) < top - 5  # the grid spans a real trade-off, so the choice matters


def test_multilabel_one_vs_rest_matches_sklearn_per_class():
    x, y = _features()
    tr = standardize(x[TRAIN])[0]
    # Three binary attributes of the digit: even, greater than 4, drawn with a closed loop.
    targets = torch.stack([y % 2 == 0, y > 4, torch.isin(y, torch.tensor([0, 6, 8, 9]))], 1).double()[TRAIN]
    l2 = 1e-2
    w, b = fit_logistic(tr, targets, l2)
    for c in range(3):
        _, ws, bs = _sklearn(tr, targets[:, c].long(), l2)
        ours = logistic_objective(tr, targets[:, c:c + 1], w[c:c + 1], b[c:c + 1], l2).item()
        theirs = logistic_objective(tr, targets[:, c:c + 1], ws, bs, l2).item()
        assert ours == pytest.approx(theirs, rel=1e-6)


def test_linear_plugin_on_digits_matches_sklearn_and_ignores_test_labels():
    x, y = _features(torch.float32)
    ev = EVALUATIONS.get("linear")(l2_range=[1e-4, 1e1], num_l2=6)
    rows = ev.evaluate(make_context(x, y, metric="mean_per_class"))
    by_metric = {r["metric"]: r for r in rows}
    assert set(by_metric) == {"top1", "top5", "mean_per_class"}
    assert all(r["protocol"] == "linear" and r["eval_dataset"] == "digits" for r in rows)
    extra = by_metric["top1"]["extra"]
    assert extra["val_metric"] == "mean_per_class" and len(extra["val_curve"]) == 6
    # Reference: standardize with train statistics, sklearn refit on train+val at the chosen l2, score on test.
    tr, va, te = standardize(*(x[s].double() for s in (TRAIN, VAL, TEST)))
    trva, y_trva = torch.cat([tr, va]), torch.cat([y[TRAIN], y[VAL]])
    clf = _sklearn(trva, y_trva, extra["l2"])[0]
    assert abs(by_metric["top1"]["value"] - 100 * clf.score(te.numpy(), y[TEST].numpy())) <= 1.0
    # The choice of l2 depends on val only: shuffled test labels change the score, not the choice.
    y_shuffled = y.clone()
    y_shuffled[TEST] = y[TEST][torch.randperm(len(y[TEST]), generator=torch.Generator().manual_seed(0))]
    clean, shuffled = (ev.evaluate(make_context(x, labels))[0] for labels in (y, y_shuffled))
    assert shuffled["extra"]["l2"] == clean["extra"]["l2"]
    assert shuffled["extra"]["val_curve"] == clean["extra"]["val_curve"]
    assert clean["value"] > 90 and shuffled["value"] < 30


@pytest.mark.parametrize("params", [{"l2_range": [1e-3]}, {"l2_range": [1.0, 0.1]}, {"l2_range": [0, 1]},
                                    {"l2_range": ["1e-6", "lots"]}, {"num_l2": 0}, {"max_iter": "many"}])
def test_linear_bad_params_are_user_errors(params):
    with pytest.raises(UserError, match=f"params.{next(iter(params))}"):
        EVALUATIONS.get("linear")(**params)


def test_linear_l2_range_accepts_yaml_exponent_strings():
    # PyYAML reads `[1e-6, 1e5]` as two strings (YAML 1.1 floats need a dot).
    assert EVALUATIONS.get("linear")(l2_range=["1e-6", "1e5"]).params["l2_range"] == [1e-6, 1e5]
