"""Metrics against hand-worked cases and a direct loop over the VOC2007 11-point definition; their per-image
evidence (what the tables' bootstrap resamples)."""
import numpy as np
import pytest
import torch

from ssl_bench.metrics import classification_metrics, map11, mean_per_class_accuracy, topk_accuracy


def test_topk_accuracy_hand_case():
    scores = torch.tensor([[0.1, 0.7, 0.2],   # label 1: top1 hit
                           [0.5, 0.3, 0.2],   # label 1: 2nd -> top2 hit only
                           [0.2, 0.3, 0.5],   # label 0: 3rd -> miss at k=1 and k=2
                           [0.6, 0.1, 0.3]])  # label 0: top1 hit
    labels = torch.tensor([1, 1, 0, 0])
    assert topk_accuracy(scores, labels, 1) == pytest.approx(50.0)  # 2 of 4
    assert topk_accuracy(scores, labels, 2) == pytest.approx(75.0)  # 3 of 4
    assert topk_accuracy(scores, labels, 3) == pytest.approx(100.0)
    with pytest.raises(ValueError):
        topk_accuracy(scores, labels, 4)


def test_mean_per_class_accuracy_hand_case():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    pred = torch.tensor([0, 0, 0, 1, 3, 1, 2])
    # recall: class 0 = 3/4, class 1 = 1/2, class 2 = 1/1; class 3 only predicted, not present -> excluded.
    # mean = (0.75 + 0.5 + 1) / 3 = 0.75 -> 75%, while plain accuracy is 5/7 = 71.4%.
    assert mean_per_class_accuracy(pred, labels) == pytest.approx(75.0)
    assert mean_per_class_accuracy(pred, labels, num_classes=10) == pytest.approx(75.0)


def test_map11_hand_case():
    scores = torch.tensor([[0.9, 0.1, 0.3], [0.8, 0.2, 0.2], [0.7, 0.3, 0.1], [0.6, 0.4, 0.5], [0.5, 0.5, 0.4]])
    targets = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]])
    # Class 0, ranked targets 1 0 1 0 0 (2 positives): (precision, recall) = (1,.5) (.5,.5) (2/3,1) (.5,1) (.4,1).
    #   r = 0..0.5 (6 levels): max precision at recall >= r is 1; r = 0.6..1 (5 levels): 2/3.
    #   AP = (6 * 1 + 5 * 2/3) / 11 = 9.3333 / 11 = 0.848485
    # Class 1, ranked by descending score: rows 4,3,2,1,0 -> targets 0 1 0 0 1:
    #   (0,0) (.5,.5) (1/3,.5) (.25,.5) (.4,1). r = 0..0.5 (6 levels): .5; r = 0.6..1 (5 levels): .4.
    #   AP = (6 * .5 + 5 * .4) / 11 = 5 / 11 = 0.454545
    # Class 2 has no positive: skipped. mAP = (9.3333 + 5) / 11 / 2 = 0.651515 -> 65.1515%.
    assert map11(scores, targets) == pytest.approx(100 * (6 + 5 * 2 / 3 + 5) / 22, abs=1e-9)
    assert map11(scores, targets) == pytest.approx(65.1515, abs=1e-4)


def test_map11_recall_level_reached_exactly():
    # 10 positives ranked: 3 positives, 1 negative, 7 positives. Precision/recall: ranks 1-3 (1, .1/.2/.3),
    # rank 4 (.75, .3), ranks 5-11 (4/5 .. 10/11, .4 .. 1). Recall 3/10 reaches level 0.3, so
    # r = 0, .1, .2, .3 -> 1 (4 levels); r = .4 .. 1 -> max precision later = 10/11 (7 levels).
    # AP = (4 + 7 * 10/11) / 11 = 10.3636 / 11 = 0.942149
    targets = torch.tensor([1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1]).view(-1, 1)
    scores = torch.linspace(1, 0, 11).view(-1, 1)
    assert map11(scores, targets) == pytest.approx(100 * (4 + 70 / 11) / 11, abs=1e-9)


def _voc07_ap_loop(scores: list[float], targets: list[int]) -> float:
    """The devkit's definition written as plain loops (independent of the vectorized version)."""
    ranked = [t for _, t in sorted(zip(scores, targets), key=lambda p: -p[0])]
    npos = sum(ranked)
    prec, rec, tp = [], [], 0
    for i, t in enumerate(ranked, 1):
        tp += t
        prec.append(tp / i)
        rec.append(tp / npos)
    ap = 0.0
    for j in range(11):
        level = j / 10
        ps = [p for p, r in zip(prec, rec) if r >= level - 1e-12]
        ap += (max(ps) if ps else 0.0) / 11
    return ap


def test_map11_matches_loop_on_random_scores():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(200, 7, generator=g, dtype=torch.float64)  # continuous: no ties
    targets = (torch.rand(200, 7, generator=g) < torch.linspace(0.02, 0.6, 7)).long()
    expected = sum(_voc07_ap_loop(scores[:, c].tolist(), targets[:, c].tolist()) for c in range(7)) / 7
    assert map11(scores, targets) == pytest.approx(100 * expected, abs=1e-9)
    # A perfect ranking scores 100.
    assert map11(targets.double() + 0.1 * scores, targets) == pytest.approx(100.0)


def test_classification_metrics_keys():
    g = torch.Generator().manual_seed(1)
    scores, labels = torch.randn(30, 10, generator=g), torch.randint(0, 10, (30,), generator=g)
    assert set(classification_metrics(scores, labels)) == {"top1", "top5"}
    assert set(classification_metrics(scores[:, :5], labels % 5, "mean_per_class")) == {"top1", "mean_per_class"}
    assert set(classification_metrics(scores, (scores > 0).float(), "map11")) == {"map11"}


# --- per-image evidence (ssl_bench.metrics.collect_evidence, ssl_bench.evalkit.evidence) -------------------------------

def test_evidence_reproduces_every_value_and_costs_nothing_outside_collection():
    from ssl_bench.metrics import collect_evidence
    from ssl_bench.report.stats import metric_value

    g = torch.Generator().manual_seed(2)
    scores, labels = torch.randn(40, 8, generator=g), torch.randint(0, 8, (40,), generator=g)
    multi = (torch.rand(40, 8, generator=g) < 0.3).float()
    with collect_evidence() as calls:
        single = classification_metrics(scores, labels, "mean_per_class")
        voc = classification_metrics(scores, multi, "map11")
    assert [c.values for c in calls] == [single, voc] and calls[0].values is single
    for call in calls:
        for metric, value in call.values.items():
            assert metric_value(metric, call.arrays) == pytest.approx(value, abs=1e-12)
    assert calls[0].arrays["labels"].dtype == np.int8 and calls[0].arrays["top1"].dtype == np.bool_
    assert calls[1].arrays["scores"].dtype == np.float32 and set(calls[1].arrays) == {"scores", "labels"}
    with collect_evidence(enabled=False) as off:
        classification_metrics(scores, labels)
    classification_metrics(scores, labels)  # outside any block: nothing kept anywhere
    assert off == [] and len(calls) == 2


def test_save_evidence_writes_one_file_per_call_and_marks_only_its_rows(tmp_path):
    from ssl_bench.evalkit.evidence import load_evidence, save_evidence
    from ssl_bench.metrics import collect_evidence

    g = torch.Generator().manual_seed(3)
    scores, labels = torch.randn(30, 10, generator=g), torch.randint(0, 10, (30,), generator=g)
    with collect_evidence() as calls:
        a = classification_metrics(scores, labels)
        b = classification_metrics(scores[:20], labels[:20])
    rows = [{"protocol": "semi_supervised", "eval_dataset": "digits", "label_fraction": 0.01, "metric": m, "value": v,
             "extra": {}} for m, v in a.items()]
    rows += [{"protocol": "semi_supervised", "eval_dataset": "digits", "label_fraction": 0.1, "metric": "top1",
              "value": b["top1"], "extra": {}},
             {"protocol": "semi_supervised", "eval_dataset": "digits", "label_fraction": 0.1, "metric": "top5",
              "value": round(b["top5"], 1), "extra": {}}]  # not the measured float: no evidence claimed
    out = tmp_path / "out"
    save_evidence(rows, calls, out / "runs" / "run-1", "semi_supervised:abcd1234")
    assert [r["extra"].get("predictions") for r in rows] == [
        "runs/run-1/predictions/semi_supervised-abcd1234__semi_supervised__digits__0.01.npz"] * 2 + [
        "runs/run-1/predictions/semi_supervised-abcd1234__semi_supervised__digits__0.1.npz", None]
    saved = load_evidence(out, rows[2]["extra"]["predictions"])
    assert len(saved["labels"]) == 20 and saved["top1"].tolist() == calls[1].arrays["top1"].tolist()
    assert not list((out / "runs" / "run-1" / "predictions").glob("*.tmp"))
    assert load_evidence(out, "../outside.npz") is None and load_evidence(out, "runs/missing.npz") is None
