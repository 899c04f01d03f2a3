"""What evaluation protocols share: frozen-encoder features, kNN, the logistic probe, the fine-tune trainer,
labelled subsets and per-image evidence. Pure tensors in, numbers out; protocols live in ssl_bench.evaluations."""
