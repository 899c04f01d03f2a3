"""Stratified splits, rank sharding (against torch's DistributedSampler), batch order, and image decoding
(against torchvision's Resize + CenterCrop)."""
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from ssl_bench.data.decode import decode_image
from ssl_bench.data.loader import iterate_batches, num_batches
from ssl_bench.data.splits import stratified_split
from ssl_bench.data.types import ImageSet


def digit_labels() -> torch.Tensor:
    return torch.as_tensor(load_digits().target, dtype=torch.long)


# ---- stratified_split ------------------------------------------------------------------------------------------
def test_split_is_deterministic_disjoint_and_complete():
    y = digit_labels()
    keep, held = stratified_split(y, 0.2, seed=3)
    keep2, held2 = stratified_split(y, 0.2, seed=3)
    assert torch.equal(keep, keep2) and torch.equal(held, held2)
    assert not set(keep.tolist()) & set(held.tolist())
    assert sorted(keep.tolist() + held.tolist()) == list(range(len(y)))
    assert len(held) == round(0.2 * len(y))
    _, other = stratified_split(y, 0.2, seed=4)
    assert not torch.equal(held, other)


def test_split_is_stratified():
    y = digit_labels()
    _, held = stratified_split(y, 0.3, seed=0)
    n_c = torch.bincount(y, minlength=10).double()
    h_c = torch.bincount(y[held], minlength=10).double()
    assert torch.all((h_c - 0.3 * n_c).abs() <= 1.0), (h_c, 0.3 * n_c)


def test_every_class_in_both_parts_even_when_tiny():
    y = torch.tensor([0] * 50 + [1] * 2 + [2] * 3 + [3])  # class 3 has one sample: it can only be kept
    keep, held = stratified_split(y, 0.1, seed=0)
    assert set(y[keep].tolist()) == {0, 1, 2, 3}
    assert set(y[held].tolist()) == {0, 1, 2}


def test_multilabel_stratifies_on_first_positive_label():
    gen = torch.Generator().manual_seed(0)
    y = (torch.rand(400, 6, generator=gen) < 0.3).float()
    keep, held = stratified_split(y, 0.25, seed=1)
    assert sorted(keep.tolist() + held.tolist()) == list(range(400))
    first = [row.nonzero()[0].item() if row.any() else -1 for row in y]  # a direct loop, independent of the code
    first = torch.tensor(first)
    for c in first.unique():
        n_c = int((first == c).sum())
        h_c = int((first[held] == c).sum())
        assert abs(h_c - 0.25 * n_c) <= 1.0


# ---- sharding and order ----------------------------------------------------------------------------------------
def indexed_set(n: int) -> ImageSet:
    """Images whose pixels encode their index (mod 256 in channel 0, div 256 in channel 1)."""
    idx = torch.arange(n)
    images = torch.stack([idx % 256, idx // 256], 1).to(torch.uint8).view(n, 2, 1, 1).expand(n, 2, 3, 3)
    return ImageSet(labels=idx.clone(), images=images.contiguous())


def collect(data: ImageSet, batch: int, seed: int | None, drop_last: bool, rank: int = 0, ws: int = 1,
            shuffle: bool = True) -> tuple[list[int], list[int]]:
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    labels, sizes = [], []
    for x, y in iterate_batches(data, batch, shuffle=shuffle, generator=gen, drop_last=drop_last, device="cpu",
                                rank=rank, world_size=ws):
        assert x.dtype == torch.uint8 and x.shape[1:] == (2, 3, 3)
        decoded = x[:, 0, 0, 0].long() + 256 * x[:, 1, 0, 0].long()
        assert torch.equal(decoded, y)  # images travel with their labels
        labels += y.tolist()
        sizes.append(len(y))
    return labels, sizes


@pytest.mark.parametrize("n,drop_last", [(96, True), (101, True), (101, False), (7, False)])
def test_two_rank_shards_match_distributed_sampler(n, drop_last):
    data, seed, epoch = indexed_set(n), 5, 3
    shards = []
    for rank in range(2):
        got, sizes = collect(data, 8, seed + epoch, drop_last, rank=rank, ws=2)
        sampler = DistributedSampler(range(n), num_replicas=2, rank=rank, shuffle=True, seed=seed, drop_last=drop_last)
        sampler.set_epoch(epoch)
        expected = list(sampler)
        if drop_last:
            expected = expected[:len(expected) // 8 * 8]
        assert got == expected
        assert len(sizes) == num_batches(n, 8, drop_last, 2)
        shards.append(got)
    if n % 16 == 0:  # no padding and no partial batch: the two shards are exactly one epoch
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == list(range(n))
    if not drop_last:
        assert set(shards[0]) | set(shards[1]) == set(range(n))  # the whole epoch, padded by wrap-around
        assert len(shards[0]) == len(shards[1])


def test_order_is_deterministic_per_seed_and_a_permutation():
    data = indexed_set(50)
    a, _ = collect(data, 16, 11, drop_last=False)
    b, _ = collect(data, 16, 11, drop_last=False)
    c, _ = collect(data, 16, 12, drop_last=False)
    assert a == b and a != c
    assert sorted(a) == list(range(50))
    assert collect(data, 16, None, drop_last=False, shuffle=False)[0] == list(range(50))


@pytest.mark.parametrize("n,bs,drop_last,ws", [(100, 8, True, 1), (100, 8, False, 1), (101, 10, True, 2),
                                               (101, 10, False, 2), (5, 8, True, 1), (0, 4, False, 1)])
def test_num_batches_matches_torch_batching(n, bs, drop_last, ws):
    per = len(DistributedSampler(range(n), num_replicas=ws, rank=0, shuffle=False, drop_last=drop_last)) if n else 0
    assert num_batches(n, bs, drop_last, ws) == len(DataLoader(range(per), batch_size=bs, drop_last=drop_last))


def test_multilabel_batches_keep_label_rows():
    labels = (torch.rand(20, 4, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    images = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 1, 2, 2).contiguous()
    for x, y in iterate_batches(ImageSet(labels=labels, images=images), 6, shuffle=True,
                                generator=torch.Generator().manual_seed(0), drop_last=False, device="cpu"):
        assert torch.equal(y, labels[x[:, 0, 0, 0].long()])


# ---- decoding --------------------------------------------------------------------------------------------------
def reference_decode(path: str, size: int, mode: str) -> torch.Tensor:
    img = Image.open(path).convert(mode)
    return TF.pil_to_tensor(TF.center_crop(TF.resize(img, size), size))


@pytest.mark.parametrize("w,h,mode", [(30, 17, "RGB"), (13, 40, "RGB"), (25, 25, "L"), (9, 21, "L")])
def test_decode_matches_torchvision_resize_center_crop(tmp_path, w, h, mode):
    rng = np.random.default_rng(w * h)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    path = str(tmp_path / "x.png")
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    got = decode_image(path, 12, channels=3 if mode == "RGB" else 1)
    assert got.dtype == torch.uint8 and got.shape == (3 if mode == "RGB" else 1, 12, 12)
    assert torch.equal(got, reference_decode(path, 12, mode))


def test_decode_gray_file_as_rgb_and_large_jpeg(tmp_path):
    gray = str(tmp_path / "g.png")
    Image.fromarray(np.full((10, 14), 77, dtype=np.uint8)).save(gray)
    assert torch.equal(decode_image(gray, 8, 3), torch.full((3, 8, 8), 77, dtype=torch.uint8))
    # a JPEG 4x larger than asked is decoded at reduced scale: the result must stay close to a full decode
    yy, xx = np.mgrid[0:96, 0:128]
    smooth = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.uint8)
    jpg = str(tmp_path / "s.jpg")
    Image.fromarray(smooth).save(jpg, quality=95)
    got = decode_image(jpg, 24, 3).float()
    assert got.shape == (3, 24, 24)
    assert (got - reference_decode(jpg, 24, "RGB").float()).abs().mean() < 4.0



def test_cpu_and_device_decode_give_the_same_folder_batches(tmp_path):
    """The two folder paths (PIL in workers; torchvision's decode_jpeg on the batch's device, here the CPU)
    batch the same samples in the same order with the same sizes. Pixels agree to the resize kernels' rounding
    (PIL rounds between its two bicubic passes) where PIL's DCT-scaled draft decode cannot apply: shorter
    side under 2 x load_size."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(14):
        h, w = int(rng.integers(6, 70)), int(rng.integers(6, 70))
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 3 + i) % 256, (yy * 4) % 256, (xx + yy) * 2 % 256], -1).astype(np.uint8)
        paths.append(str(tmp_path / f"{i}.jpg"))
        Image.fromarray(img).save(paths[-1], quality=92)
    labels = torch.arange(14) % 3

    def batches(decode: str, shuffle: bool) -> list:
        data = ImageSet(labels=labels, paths=paths, load_size=10, eval_crop=0.875, decode=decode)
        return list(iterate_batches(data, 4, shuffle=shuffle, generator=torch.Generator().manual_seed(1),
                                    drop_last=shuffle, device="cpu", num_workers=2))

    cpu, dev = batches("cpu", True), batches("device", True)
    assert len(cpu) == len(dev) == 3
    for (a, ya), (b, yb) in zip(cpu, dev):
        assert torch.equal(ya, yb) and torch.equal(a.sizes, b.sizes) and a.pixels.shape == b.pixels.shape
        assert a.eval_crop == b.eval_crop == 0.875
    cpu = [img for x, _ in batches("cpu", False) for img in zip(x.pixels, x.sizes.tolist())]
    dev = [img for x, _ in batches("device", False) for img in zip(x.pixels, x.sizes.tolist())]
    compared = 0
    for (pa, (h, w)), (pb, size_b), path in zip(cpu, dev, paths):
        assert (h, w) == tuple(size_b) and pb[:, h:].eq(0).all() and pb[:, :, w:].eq(0).all()
        if min(Image.open(path).size) < 20:
            compared += 1
            assert (pa[:, :h, :w].int() - pb[:, :h, :w].int()).abs().max() <= 2
    assert compared >= 3
