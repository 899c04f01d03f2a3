"""Labelled subsets: class balance, determinism, disjoint from val/test, subset-file parsing and its errors."""
import pytest
import torch

from ssl_bench.data.bundle import assemble
from ssl_bench.data.types import ImageSet
from ssl_bench.errors import UserError
from ssl_bench.evalkit.label_subsets import balanced_subset, match_names, read_subset_file, save_subset, subset_from_file


def _labels(counts):
    return torch.cat([torch.full((c,), k, dtype=torch.long) for k, c in enumerate(counts)])


def test_balanced_counts_match_hand_computed():
    labels = _labels([50, 30, 3, 40])  # N = 123, C = 4
    # 10%: round(0.1 * 123 / 4) = round(3.075) = 3 per class; the class of 3 gives all it has
    idx = balanced_subset(labels, 0.1, seed=0)
    assert torch.bincount(labels[idx], minlength=4).tolist() == [3, 3, 3, 3]
    # 40%: round(12.3) = 12 per class, capped at 3 for class 2
    idx = balanced_subset(labels, 0.4, seed=0)
    assert torch.bincount(labels[idx], minlength=4).tolist() == [12, 12, 3, 12]
    assert len(set(idx.tolist())) == len(idx) and idx.tolist() == sorted(idx.tolist())


def test_tiny_fraction_keeps_one_image_per_class():
    labels = _labels([100, 80, 60])
    idx = balanced_subset(labels, 0.001, seed=3)
    assert torch.bincount(labels[idx]).tolist() == [1, 1, 1]


def test_deterministic_across_runs_and_seeded():
    labels = torch.randint(0, 10, (1000,), generator=torch.Generator().manual_seed(1))
    a, b = balanced_subset(labels, 0.05, seed=7), balanced_subset(labels.clone(), 0.05, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, balanced_subset(labels, 0.05, seed=8))


def test_bad_fraction_is_user_error():
    for bad in (0, 1.5, -0.1, "x", True):
        with pytest.raises(UserError, match="fraction"):
            balanced_subset(torch.zeros(5, dtype=torch.long), bad, seed=0)


def test_subset_indexes_train_only_never_val_or_test():
    n = 600
    ids = torch.arange(n)
    images = torch.stack([ids % 256, ids // 256], 1).to(torch.uint8).view(n, 1, 1, 2)  # pixels encode the id
    labels = torch.arange(n) % 6
    bundle = assemble("tagged", train=ImageSet(labels=labels, images=images), test=None, num_classes=6,
                      val_fraction=0.1, test_fraction=0.2, split_seed=0)

    def tag(s):
        return set((s.images[:, 0, 0, 0].long() + 256 * s.images[:, 0, 0, 1].long()).tolist())

    idx = balanced_subset(bundle.train.labels, 0.1, seed=0)
    chosen = tag(bundle.train.subset(idx))
    assert len(chosen) == len(idx) == 6 * round(0.1 * len(bundle.train) / 6)
    assert not chosen & tag(bundle.val) and not chosen & tag(bundle.test)


def test_read_subset_file_skips_blanks_and_comments(tmp_path):
    f = tmp_path / "1percent.txt"
    f.write_text("# header\nn01_1.JPEG\n\n  n02_7.JPEG  \n")
    assert read_subset_file(f) == ["n01_1.JPEG", "n02_7.JPEG"]


@pytest.mark.parametrize("content,match", [(None, "does not exist"), ("\n# only a comment\n", "no entries"),
                                           ("a.png\nb.png\na.png\n", "more than once")])
def test_read_subset_file_errors(tmp_path, content, match):
    f = tmp_path / "s.txt"
    if content is not None:
        f.write_text(content)
    with pytest.raises(UserError, match=match):
        read_subset_file(f)


PATHS = ["/d/train/cat/c1.png", "/d/train/cat/c2.png", "/d/train/dog/d1.png", "/d/train/dog/x.png",
         "/d/train/cat/x.png"]


def test_match_names_by_file_name_and_by_class_path():
    assert match_names(["d1.png", "c1.png"], PATHS).tolist() == [0, 2]
    assert match_names(["dog/x.png"], PATHS).tolist() == [3]


def test_missing_names_are_named_by_line_not_by_content():
    with pytest.raises(UserError) as err:
        match_names(["c1.png", "nope1.png", "nope2.png"], PATHS, "subset_file 's.txt'", lines=[2, 5, 9])
    msg = str(err.value)
    assert "2 of 3" in msg and "(lines 5, 9)" in msg and "s.txt" in msg and "nope" not in msg


def test_ambiguous_name_is_error():
    with pytest.raises(UserError, match="several"):
        match_names(["x.png"], PATHS)


def test_index_entries_out_of_range(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("0\n# c\n5\n12\n")
    with pytest.raises(UserError, match=r"1 of 3 entries are not indices of the train split \(line 4\)"):
        subset_from_file(f, None, size=10)


def test_saved_subset_reads_back(tmp_path):
    idx = torch.tensor([1, 3])
    path = save_subset(tmp_path, "names", idx, PATHS, "header line")
    assert path.read_text().splitlines()[1:] == ["cat/c2.png", "dog/x.png"]
    assert subset_from_file(path, PATHS, len(PATHS)).tolist() == [1, 3]
    path = save_subset(tmp_path, "indices", torch.tensor([0, 4, 9]), None, "h")
    assert subset_from_file(path, None, size=10).tolist() == [0, 4, 9]


def test_gzipped_subset_file_reads_like_the_plain_one(tmp_path):
    import gzip

    names = ["n01440764_10026.JPEG", "n01443537_2.JPEG"]
    plain, packed = tmp_path / "1percent.txt", tmp_path / "1percent.txt.gz"
    plain.write_text("\n".join(names) + "\n")
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_subset_file(packed) == read_subset_file(plain) == names


def test_subset_file_on_an_in_memory_dataset_indexes_train_and_keeps_val(tmp_path):
    from ssl_bench.evalkit.label_subsets import subset_file_split

    images = torch.zeros(40, 1, 2, 2, dtype=torch.uint8)
    bundle = assemble("toy", train=ImageSet(labels=_labels([20, 20]), images=images), test=None, num_classes=2,
                      val_fraction=0.25, test_fraction=0.25, split_seed=0)
    (tmp_path / "s.txt").write_text("0\n3\n")
    pool, idx, val = subset_file_split(tmp_path / "s.txt", bundle)
    assert pool is bundle.train and idx.tolist() == [0, 3] and val is bundle.val
