"""Barlow Twins, VICReg and SimSiam at world size 2 (gloo, CPU) against one process with the same global batch.

Three levels, all float64: (1) the losses through the real gathers: same loss, and gradients that DDP's average
turns into the one-process gradient, to 1e-6; (2) SimSiam's training step runs no collective at all (its loss
is a per-process mean) while Barlow Twins' and VICReg's do; (3) two SGD steps through the engine with DDP and
SyncBatchNorm (tests/dist_worker.py's tiny ConvNet, fixed views) end in the same parameters as one process.
This module's top-level imports stay light: each spawned child imports it to find the worker.
"""
import pytest
import torch

N, WORLD, D = 3, 2, 4  # rows per process, processes, embedding width
ENGINE_CASES = {  # the losses' defaults, tiny heads; bias_lr_scale != 1 and fix_pred_lr exercise the lr groups
    "barlow_twins": {"proj_dims": [16, 8], "bias_lr_scale": 0.5},
    "vicreg": {"proj_dims": [16, 8]},
    "simsiam": {"proj_hidden_dim": 16, "proj_dim": 8, "pred_hidden_dim": 4},
}


def _embeddings() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    z1 = torch.randn(N * WORLD, D, generator=g, dtype=torch.float64) * torch.tensor([0.4, 1.0, 2.0, 0.7])
    return z1, 0.5 * z1 + torch.randn(N * WORLD, D, generator=g, dtype=torch.float64)


def _losses(z1: torch.Tensor, z2: torch.Tensor, gather) -> dict[str, torch.Tensor]:
    """Each method's loss as its training_step computes it from this process's embeddings."""
    from ssl_bench.methods.losses import barlow_twins_loss, simsiam_loss, vicreg_loss

    return {"barlow_twins": barlow_twins_loss(gather(z1), gather(z2), 0.0051),
            "vicreg": vicreg_loss(z1, z2, gather(z1), gather(z2), 25.0, 25.0, 1.0),
            "simsiam": simsiam_loss(z1 @ torch.eye(D, dtype=z1.dtype).flip(0), z2 * 1.5, z1, z2)}


def _loss_level(z1_all: torch.Tensor, z2_all: torch.Tensor) -> dict:
    from ssl_bench import distributed as sdist

    mine = slice(sdist.rank() * N, (sdist.rank() + 1) * N)
    out = {}
    for name in ("barlow_twins", "vicreg", "simsiam"):
        z1 = z1_all[mine].clone().requires_grad_(True)
        z2 = z2_all[mine].clone().requires_grad_(True)
        loss = _losses(z1, z2, sdist.gather_with_grad)[name]
        loss.backward()
        out[name] = (loss.detach(), z1.grad, z2.grad)
    return out


def _count_collectives(reset_record) -> dict[str, int]:
    """Collectives each method's training step (forward + backward, plain BatchNorm) calls."""
    from ssl_bench.backbones import create_backbone
    from ssl_bench.registry import METHODS

    counts = {}
    for name, params in ENGINE_CASES.items():
        torch.manual_seed(0)
        bb = create_backbone("resnet18", in_chans=1, image_size=8, channels=[4, 8, 8, 8], stem_width=4)
        model = METHODS.get(name)(bb, **params)
        calls = reset_record()
        model([torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)])["loss"].backward()
        counts[name] = len(calls)
    return counts


def _patch_collectives():
    """Wrap every torch.distributed collective so that each call is recorded; returns a function that resets
    the record and returns the (live) list of calls."""
    import torch.distributed as dist

    calls: list[str] = []
    for fn in ("all_gather", "all_reduce", "all_gather_into_tensor", "reduce_scatter", "broadcast", "reduce"):
        real = getattr(dist, fn)

        def wrapped(*a, _real=real, _fn=fn, **k):
            calls.append(_fn)
            return _real(*a, **k)

        setattr(dist, fn, wrapped)

    def reset() -> list[str]:
        calls.clear()
        return calls

    return reset


def _train(name: str, run_dir) -> torch.nn.Module:
    """tests/dist_worker.py's recipe for one of ENGINE_CASES: seed 0, float64, SyncBN when distributed, one
    epoch of dist_worker.STEPS SGD steps on fixed views of digits."""
    import dist_worker
    from ssl_bench import distributed as sdist
    from ssl_bench.engine.trainer import TrainSettings, pretrain
    from ssl_bench.registry import METHODS
    from ssl_bench.engine.sync_batchnorm import convert_sync_batchnorm

    torch.manual_seed(0)
    model = METHODS.get(name)(dist_worker.TinyConvNet(), **ENGINE_CASES[name]).double()
    if sdist.world_size() > 1:
        model = convert_sync_batchnorm(model, torch.device("cpu"))
    settings = TrainSettings(epochs=1, batch_size=dist_worker.GLOBAL_BATCH, optim=dist_worker.OPTIM,
                             device=torch.device("cpu"), channels_last=True, seed=0, log_every=1, progress=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    pretrain(model, dist_worker.digits(), dist_worker.fixed_views, settings, run_dir)
    return model


def _engine_level(out_dir: str) -> dict[str, dict]:
    from pathlib import Path

    rank = torch.distributed.get_rank()
    return {name: {k: v.clone() for k, v in _train(name, Path(out_dir) / f"{name}_rank{rank}").state_dict().items()}
            for name in ENGINE_CASES}


def _worker(rank: int, world: int, tmp: str, z1, z2) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    result = {"loss_level": _loss_level(z1, z2)}
    result["engine"] = _engine_level(tmp)
    result["collectives"] = _count_collectives(_patch_collectives())
    torch.save(result, f"{tmp}/{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    import torch.multiprocessing as mp

    tmp = tmp_path_factory.mktemp("ws")
    z1, z2 = _embeddings()
    mp.spawn(_worker, args=(WORLD, str(tmp), z1, z2), nprocs=WORLD)  # spawn, not fork (see test_simclr.py)
    return [torch.load(tmp / f"{r}.pt") for r in range(WORLD)]


def _one_process(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z1, z2 = (z.clone().requires_grad_(True) for z in _embeddings())
    loss = _losses(z1, z2, lambda z: z)[name]
    loss.backward()
    return loss.detach(), z1.grad, z2.grad


@pytest.mark.slow
@pytest.mark.parametrize("name", ["barlow_twins", "vicreg", "simsiam"])
def test_loss_and_gradients_equal_one_process(two_ranks, name):
    """DDP averages parameter gradients over processes: rank r's gradient on its rows, divided by the world
    size, must be the one-process gradient on those rows; the mean of the ranks' losses is the logged loss."""
    loss, g1, g2 = _one_process(name)
    per_rank = [res["loss_level"][name] for res in two_ranks]
    assert abs(sum(x[0].item() for x in per_rank) / WORLD - loss.item()) < 1e-6
    for r, (_, r1, r2) in enumerate(per_rank):
        rows = slice(r * N, (r + 1) * N)
        torch.testing.assert_close(r1 / WORLD, g1[rows], rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(r2 / WORLD, g2[rows], rtol=1e-6, atol=1e-9)
    if name == "barlow_twins":  # the cross-correlation is the global batch's on every rank: the same loss
        assert all(abs(x[0].item() - loss.item()) < 1e-9 for x in per_rank)


def test_a_local_loss_would_not_pass():
    """The comparison has teeth: Barlow Twins and VICReg computed on one process's rows alone differ from the
    global batch's, so a missing gather fails the test above; SimSiam's mean of local losses does not."""
    z1, z2 = _embeddings()
    ident = lambda z: z  # noqa: E731
    for name in ("barlow_twins", "vicreg"):
        glob = _losses(z1, z2, ident)[name].item()
        local = sum(_losses(z1[r * N:(r + 1) * N], z2[r * N:(r + 1) * N], ident)[name].item()
                    for r in range(WORLD)) / WORLD
        assert abs(glob - local) > 1e-3, name
    glob = _losses(z1, z2, ident)["simsiam"].item()
    local = sum(_losses(z1[r * N:(r + 1) * N], z2[r * N:(r + 1) * N], ident)["simsiam"].item()
                for r in range(WORLD)) / WORLD
    assert abs(glob - local) < 1e-12


@pytest.mark.slow
def test_simsiam_runs_no_collective_and_the_others_gather(two_ranks):
    for res in two_ranks:
        counts = res["collectives"]
        assert counts["simsiam"] == 0, counts  # a per-process mean: nothing crosses processes
        assert counts["barlow_twins"] >= 2 and counts["vicreg"] >= 2, counts  # two gathers, and their backward


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ENGINE_CASES))
def test_engine_two_ranks_match_one_process(two_ranks, name, tmp_path):
    import dist_worker
    from ssl_bench.registry import METHODS

    torch.manual_seed(0)
    init = METHODS.get(name)(dist_worker.TinyConvNet(), **ENGINE_CASES[name]).double().state_dict()
    ref = _train(name, tmp_path / name).state_dict()
    for r, res in enumerate(two_ranks):
        got = res["engine"][name]
        assert set(got) == set(ref)
        for key, want in ref.items():
            torch.testing.assert_close(got[key], want, rtol=1e-6, atol=1e-9, msg=f"{name} rank {r}: {key}")
    changed = [k for k in ref if ref[k].is_floating_point() and (ref[k] - init[k]).abs().max() > 1e-4]
    assert any(k.startswith("backbone.") and k.endswith("weight") for k in changed), changed
    assert any(k.startswith("projector.") for k in changed), changed
