"""MAE and I-JEPA gather nothing across processes [MAE engine_pretrain.py; IJ src/train.py L310-313: only the
logged loss is all-reduced]: under DDP on 2 gloo processes with half the global batch each (and the same masks
as the one-process run, fixed here), the mean of the per-process losses is the one-process loss of the global
batch and DDP's averaged gradients are its gradients (float64, to 1e-6)."""
import pytest
import torch

KEEP_GEN_SEED, N_PER_RANK, WORLD = 11, 3, 2
SMALL = {"mae": {"decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2},
         "ijepa": {"pred_dim": 16, "pred_depth": 1, "min_keep": 4}}


def _global_batch():
    """Images and masks of the whole batch (2 x 3 images), a fixed function of the seed."""
    from ssl_bench.methods.masks import MultiBlock, mae_random_masking, multiblock_masks

    g = torch.Generator().manual_seed(KEEP_GEN_SEED)
    n = N_PER_RANK * WORLD
    x = torch.randn(n, 1, 16, 16, dtype=torch.float64, generator=g)
    mae = mae_random_masking(n, 64, 0.75, g)
    ijepa = multiblock_masks(n, MultiBlock(grid=(8, 8), min_keep=4), g)
    return x, {"mae": mae, "ijepa": ijepa}


def _method(name: str):
    from masked_image_helpers import tiny_vit
    from ssl_bench.create import create_method

    torch.manual_seed(0)
    return create_method(name, tiny_vit(), **SMALL[name]).double()


def _fix_masks(setattr_, name: str, masks: tuple) -> None:
    """The method draws exactly these masks (sliced to this process's images)."""
    import ssl_bench.methods.ijepa as ijepa_module
    import ssl_bench.methods.mae as mae_module

    if name == "mae":
        setattr_(mae_module, "mae_random_masking", lambda *a: masks)
    else:
        setattr_(ijepa_module, "multiblock_masks", lambda *a: masks)


def _step(net, model, x) -> tuple[float, dict]:
    loss = net([x])["loss"]
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, tmp: str) -> None:
    import sys

    import torch.distributed as dist

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=WORLD)
    x, masks = _global_batch()
    mine = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
    out = {}
    for name in ("mae", "ijepa"):
        model = _method(name)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        _fix_masks(setattr, name, tuple(m[mine] for m in masks[name]))  # a process of its own: no undo needed
        out[name] = _step(ddp, model, x[mine])
    torch.save(out, f"{tmp}/{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mae", "ijepa"])
def test_ddp_gradients_and_mean_loss_equal_the_one_process_global_batch(name, two_process_results, monkeypatch):
    x, masks = _global_batch()
    model = _method(name)
    _fix_masks(monkeypatch.setattr, name, masks[name])
    ref_loss, ref_grads = _step(model, model, x)
    got = two_process_results
    assert sum(got[r][name][0] for r in range(WORLD)) / WORLD == pytest.approx(ref_loss, rel=1e-6)
    assert got[0][name][0] != pytest.approx(got[1][name][0], rel=1e-3)  # the halves differ: not a trivial check
    for r in range(WORLD):
        grads = got[r][name][1]
        assert set(grads) == set(ref_grads)
        for key, want in ref_grads.items():
            torch.testing.assert_close(grads[key], want, rtol=1e-6, atol=1e-9, msg=f"{name} rank {r}: {key}")


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    import torch.multiprocessing as mp

    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(str(tmp),), nprocs=WORLD)  # spawn: see test_simclr.py
    return [torch.load(tmp / f"{r}.pt") for r in range(WORLD)]
