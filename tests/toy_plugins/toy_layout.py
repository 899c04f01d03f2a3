"""A toy table layout plugin: kNN top-1 only, one row per method, one column per evaluation dataset."""
from ssl_bench import Section, register_table_layout


def _knn_top1(df):
    return df[(df["protocol"] == "knn") & (df["metric"] == "top1")]


@register_table_layout("toy")
def toy_layout(df):
    """kNN top-1 per method and evaluation dataset"""
    return [Section("toy", "Toy: kNN top-1", _knn_top1, ["method"], ["eval_dataset"])]
