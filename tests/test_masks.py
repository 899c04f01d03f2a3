"""Mask samplers of MAE and I-JEPA (methods/masks.py) against the official algorithms written out here:
MAE's argsort-of-noise masking [MAE models_mae.py random_masking], I-JEPA's block sizes and multi-block rules
[IJ src/masks/multiblock.py], and the per-step generator that makes them reproducible and resumable."""
import math

import pytest
import torch

from ssl_bench.methods.masks import MaskClock, MultiBlock, block_size, first_k, mae_random_masking, multiblock_masks


# ---- MAE ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, ratio", [(64, 0.75), (196, 0.75), (49, 0.6), (16, 0.9), (100, 0.5)])
def test_mae_keeps_int_n_times_one_minus_ratio_per_image_and_masks_the_rest(n, ratio):
    keep, masked = mae_random_masking(32, n, ratio, torch.Generator().manual_seed(n))
    n_keep = int(n * (1 - ratio))  # [MAE models_mae.py L130]: int(), the same count for every image
    assert keep.shape == (32, n_keep) and keep.dtype == torch.long
    assert masked.shape == (32, n) and masked.dtype == torch.bool
    assert (masked.sum(1) == n - n_keep).all()
    for row_keep, row_masked in zip(keep, masked):
        assert len(set(row_keep.tolist())) == n_keep  # no patch kept twice
        assert not row_masked[row_keep].any()  # kept patches are exactly the unmasked ones


def test_mae_masking_equals_the_official_argsort_of_the_same_noise():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    keep, masked = mae_random_masking(5, 20, 0.75, g1)
    noise = torch.rand(5, 20, generator=g2)  # official: noise = rand(N, L); shuffle = argsort(noise)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    official = torch.ones(5, 20)
    official[:, :5] = 0  # 0 keep, 1 remove, then unshuffled
    official = torch.gather(official, 1, ids_restore)
    assert torch.equal(keep, ids_shuffle[:, :5])
    assert torch.equal(masked, official.bool())


def test_mae_masking_is_uniform_over_patches():
    keep, _ = mae_random_masking(4000, 16, 0.75, torch.Generator().manual_seed(0))
    counts = torch.bincount(keep.flatten(), minlength=16).double()
    p = 4 / 16  # each patch is kept with probability n_keep / N
    sd = math.sqrt(4000 * p * (1 - p))
    assert (counts - 4000 * p).abs().max() < 5 * sd


def test_mae_rejects_a_ratio_that_keeps_nothing_or_everything():
    with pytest.raises(ValueError, match="keeps 0 of 4"):
        mae_random_masking(2, 4, 0.9, torch.Generator())


# ---- I-JEPA ---------------------------------------------------------------------------------------------------
def official_block_size(u, height, width, scale, aspect):
    """[IJ multiblock.py L55-72] written out: one uniform for both scale and aspect, h, w clipped below H, W."""
    max_keep = int(height * width * (scale[0] + u * (scale[1] - scale[0])))
    ar = aspect[0] + u * (aspect[1] - aspect[0])
    h = int(round(math.sqrt(max_keep * ar)))
    w = int(round(math.sqrt(max_keep / ar)))
    while h >= height:
        h -= 1
    while w >= width:
        w -= 1
    return h, w


def possible_sizes(grid, scale, aspect):
    return {official_block_size(i / 2000, *grid, scale, aspect) for i in range(2001)}


@pytest.mark.parametrize("grid, scale, aspect", [((14, 14), (0.15, 0.2), (0.75, 1.5)), ((8, 8), (0.85, 1.0), (1, 1)),
                                                 ((16, 16), (0.85, 1.0), (1, 1)), ((7, 9), (0.3, 0.6), (0.5, 2.0))])
def test_block_size_equals_the_official_formula(grid, scale, aspect):
    for i in range(101):
        assert block_size(i / 100, grid, scale, aspect) == official_block_size(i / 100, *grid, scale, aspect)


def _rectangle(indices, width):
    """(top, left, h, w) if the raster indices are exactly a full rectangle, else None."""
    rows, cols = {i // width for i in indices}, {i % width for i in indices}
    top, left, h, w = min(rows), min(cols), len(rows), len(cols)
    full = {(top + r) * width + left + c for r in range(h) for c in range(w)}
    return (top, left, h, w) if set(indices) == full and max(rows) - top + 1 == h else None


def test_targets_are_rectangles_of_the_declared_scale_and_aspect_with_one_size_per_batch():
    spec = MultiBlock(grid=(14, 14))  # the ViT-H/14 recipe [IJ configs/in1k_vith14_ep300.yaml]
    allowed = possible_sizes(spec.grid, spec.target_scale, spec.target_aspect)
    sizes_seen = set()
    for seed in range(20):
        _, targets = multiblock_masks(16, spec, torch.Generator().manual_seed(seed))
        assert targets.shape[:2] == (16, spec.num_targets)
        rects = [_rectangle(blk.tolist(), 14) for img in targets for blk in img]
        assert all(r is not None for r in rects)
        sizes = {(r[2], r[3]) for r in rects}
        assert len(sizes) == 1 and sizes <= allowed  # one (h, w) for the whole batch, as the collator draws it
        sizes_seen |= sizes
    assert len(sizes_seen) > 1  # the size is drawn per batch


def test_context_is_a_square_block_minus_every_target_with_equal_counts_across_the_batch():
    spec = MultiBlock(grid=(14, 14))
    context_sides = {h for h, w in possible_sizes(spec.grid, spec.context_scale, (1.0, 1.0))}
    for seed in range(20):
        context, targets = multiblock_masks(16, spec, torch.Generator().manual_seed(seed))
        assert context.shape[0] == 16 and context.shape[1] > spec.min_keep  # one count for every image
        for ctx, tgt in zip(context.tolist(), targets.tolist()):
            assert ctx == sorted(set(ctx))  # raster order, no repeats
            assert not set(ctx) & {i for blk in tgt for i in blk}  # allow_overlap: false
            rows, cols = [i // 14 for i in ctx], [i % 14 for i in ctx]
            assert max(rows) - min(rows) < max(context_sides) and max(cols) - min(cols) < max(context_sides)


def test_block_corners_follow_the_official_exclusive_bound():
    """[IJ multiblock.py L89-90]: top ~ randint(0, H - h), so a block never reaches the last row or column."""
    spec = MultiBlock(grid=(8, 8), min_keep=4)
    tops, bottoms = set(), set()
    for seed in range(30):
        _, targets = multiblock_masks(32, spec, torch.Generator().manual_seed(seed))
        for blk in targets.reshape(-1, targets.shape[2]).tolist():
            tops.add(min(blk) // 8)
            bottoms.add(max(blk) // 8)
    assert min(tops) == 0 and max(bottoms) == 6  # rows 0..6 reached, row 7 never


def test_first_k_keeps_the_first_indices_in_raster_order():
    masks = torch.tensor([[0, 1, 1, 0, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    assert first_k(masks, 3).tolist() == [[1, 2, 4], [0, 1, 2]]  # [IJ multiblock.py L167]: cm[:min_keep_enc]


def test_context_drops_target_constraints_when_no_try_leaves_more_than_min_keep():
    """Targets covering almost all of a 5x5 grid: the context must overlap them, and still has more than
    min_keep patches (the official loop relaxes the last targets' constraints after 20 failed tries)."""
    spec = MultiBlock(grid=(5, 5), context_scale=(0.6, 0.6), target_scale=(0.6, 0.6), target_aspect=(1, 1),
                      num_targets=4, min_keep=3)
    context, targets = multiblock_masks(8, spec, torch.Generator().manual_seed(0))
    assert context.shape[1] > spec.min_keep
    covered = [{i for blk in img for i in blk} for img in targets.tolist()]
    assert any(set(ctx) & cov for ctx, cov in zip(context.tolist(), covered))


def test_an_impossible_context_is_an_error_not_an_endless_loop():
    spec = MultiBlock(grid=(4, 4), context_scale=(0.3, 0.3), min_keep=20)
    with pytest.raises(ValueError, match="min_keep=20"):
        multiblock_masks(2, spec, torch.Generator().manual_seed(0))


def test_masks_are_a_pure_function_of_the_generator():
    spec = MultiBlock(grid=(14, 14))
    a = multiblock_masks(8, spec, torch.Generator().manual_seed(7))
    b = multiblock_masks(8, spec, torch.Generator().manual_seed(7))
    c = multiblock_masks(8, spec, torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, c))


# ---- the per-step generator -----------------------------------------------------------------------------------
def _draws(clock: MaskClock, n: int) -> list[torch.Tensor]:
    return [torch.rand(4, generator=clock.generator()) for _ in range(n)]


def test_mask_clock_is_seeded_by_the_global_rng_and_resumes_from_its_state_dict():
    torch.manual_seed(0)
    a = MaskClock()
    torch.manual_seed(0)
    b = MaskClock()
    first = _draws(a, 3)
    assert all(torch.equal(x, y) for x, y in zip(first, _draws(b, 3)))  # same run seed: same masks
    assert not torch.equal(first[0], first[1])  # each step its own stream
    torch.manual_seed(0)
    resumed = MaskClock()
    _draws(resumed, 1)
    state = resumed.state_dict()  # what the checkpoint after step 1 holds
    fresh = MaskClock()  # another seed
    fresh.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(first[1:], _draws(fresh, 2)))
    torch.manual_seed(1)
    assert not torch.equal(first[0], _draws(MaskClock(), 1)[0])  # another run seed: other masks


def test_each_rank_draws_its_own_masks(monkeypatch):
    from ssl_bench.methods import masks

    torch.manual_seed(0)
    clock = MaskClock()
    state = clock.state_dict()
    rank0 = _draws(clock, 1)[0]
    clock.load_state_dict(state)
    monkeypatch.setattr(masks, "rank", lambda: 1)
    assert not torch.equal(rank0, _draws(clock, 1)[0])
