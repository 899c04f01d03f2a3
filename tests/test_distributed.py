"""Distributed training equals single-process training (2 gloo ranks on CPU), and a 2-rank suite run writes
each result once and resumes after one rank is killed.

The equivalence tests start tests/dist_worker.py as two ranks (torchrun's environment variables, no agent) and
compare against the same training run on this one process with the global batch: one epoch of two SGD steps
with SyncBatchNorm, fixed views, float64. Any gather, gradient-scaling or BN-statistics error shows up as a
parameter difference far above float64 round-off.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

import dist_worker
from conftest import results_rows as _records

HERE = Path(__file__).parent
PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", **extra}


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    port = str(_free_port())
    procs = [subprocess.Popen([PY, str(HERE / "dist_worker.py"), str(out)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                       MASTER_PORT=port))
             for r in range(2)]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)[-3000:]
    assert json.loads((out / "done.json").read_text()) == {"world_size": 2}
    return out


def _loss(run_dir: Path) -> float:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0] and rows[0]["step"] == dist_worker.STEPS
    return rows[0]["loss"]


def _single(name: str, tmp_path: Path) -> tuple[dict, dict, float]:
    """Reference on this process: initial and trained state, and the logged epoch loss."""
    cls, params = dist_worker.CASES[name]
    torch.manual_seed(0)
    init = cls(dist_worker.TinyConvNet(), **params).double().state_dict()
    model = dist_worker.train_case(name, tmp_path / name)
    return init, model.state_dict(), _loss(tmp_path / name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["byol", "simclr", "moco_v3", "nnclr", "swav", "dino"])
def test_two_ranks_match_one_process(name, two_rank_run, tmp_path):
    init, ref, ref_loss = _single(name, tmp_path)
    assert _loss(two_rank_run / name) == pytest.approx(ref_loss, rel=1e-6)  # global mean over ranks
    for r in range(2):
        got = torch.load(two_rank_run / f"{name}_rank{r}.pt")
        assert set(got) == set(ref)  # SyncBN keeps BatchNorm's state_dict keys
        for key, want in ref.items():
            if key == "queue":  # MoCo's, NNCLR's: global, in rank order (tests below); SwAV's: each rank's own
                continue
            torch.testing.assert_close(got[key], want, rtol=1e-9, atol=1e-10, msg=f"{name} rank {r}: {key}")
    # the comparison has teeth: the online network, the target (EMA) and BN running stats all changed
    changed = {k for k in ref if ref[k].is_floating_point() and (ref[k] - init[k]).abs().max() > 1e-4}
    assert any(k.startswith("backbone.") and "running_var" in k for k in changed)
    ema = ("target_", "momentum_", "teacher_")
    assert any(k.startswith(ema) and k.endswith("weight") for k in changed) or name in ("simclr", "nnclr", "swav")
    if name == "dino":  # the center: a mean over the global batch, the same on every rank
        assert "center" in changed
    if name == "swav":  # the prototypes, frozen in step 0, trained in step 1; the queue took part in step 1
        assert "prototypes.weight" in changed
    assert any(k.startswith("backbone.") and k.endswith("weight") for k in changed)


@pytest.mark.slow
def test_moco_v2_queue_matches_one_process(two_rank_run, tmp_path):
    init, ref, ref_loss = _single("moco_v2", tmp_path)
    assert _loss(two_rank_run / "moco_v2") == pytest.approx(ref_loss, rel=1e-6)
    b, steps = dist_worker.GLOBAL_BATCH, dist_worker.STEPS
    # Step s enqueued the keys of sample positions order[s*B:(s+1)*B]; on one process in that order, on two
    # ranks gathered rank-major: rank r's half holds positions s*B + r, s*B + r + 2, ...
    perm = torch.cat([torch.arange(r, b, 2) for r in range(2)])
    expected = ref["queue"].clone()
    for s in range(steps):
        expected[s * b:(s + 1) * b] = ref["queue"][s * b:(s + 1) * b][perm]
    torch.testing.assert_close(expected[steps * b:], init["queue"][steps * b:])  # untouched slots
    for r in range(2):
        got = torch.load(two_rank_run / f"moco_v2_rank{r}.pt")
        torch.testing.assert_close(got["queue"], expected, rtol=1e-9, atol=1e-10)
        assert int(got["queue_ptr"]) == steps * b
        for key in ("backbone.net.0.weight", "key_backbone.net.0.weight", "projector.0.weight"):
            torch.testing.assert_close(got[key], ref[key], rtol=1e-9, atol=1e-10)


@pytest.mark.slow
def test_nnclr_support_set_matches_one_process(two_rank_run, tmp_path):
    """Every rank writes the global batch's view-1 embeddings: the one-process support set, rows in the order
    the ranks gather them (as for MoCo v2's queue above)."""
    init, ref, _ = _single("nnclr", tmp_path)
    b, steps = dist_worker.GLOBAL_BATCH, dist_worker.STEPS
    perm = torch.cat([torch.arange(r, b, 2) for r in range(2)])
    expected = ref["queue"].clone()
    for s in range(steps):
        expected[s * b:(s + 1) * b] = ref["queue"][s * b:(s + 1) * b][perm]
    torch.testing.assert_close(expected[steps * b:], init["queue"][steps * b:])
    assert (ref["queue"][:b] - init["queue"][:b]).abs().max() > 1e-3  # it was written
    for r in range(2):
        got = torch.load(two_rank_run / f"nnclr_rank{r}.pt")
        torch.testing.assert_close(got["queue"], expected, rtol=1e-9, atol=1e-10)
        assert int(got["queue_ptr"]) == steps * b


SUITE = """
name: tinydist
seeds: [0]
datasets: [{name: digits, image_size: 8}]
backbones: [{name: resnet18, label: r18-tiny, kwargs: {channels: [8, 8, 8, 8]}}]  # 64-wide stem: an 8-wide one
methods:                                                                             # left 1-epoch SimCLR collapsed
  - name: simclr
    epochs: 1
    params: {proj_hidden_dim: 16, proj_dim: 8}
  - name: byol
    params: {proj_hidden_dim: 16, proj_dim: 8, pred_hidden_dim: 16}
    optim: {base_lr: 1.0, warmup_epochs: 1}
pretrain: {epochs: 3, batch_size: 128, amp: off, log_every: 5, num_workers: 0}
evaluations:
  - {name: knn, params: {k: 10}}
output: {table: true, report: false}
"""


def _worker_pids(agent: int) -> dict[int, int]:
    """{RANK: pid} of the torchrun agent's worker processes, read from /proc."""
    out = {}
    for task in Path(f"/proc/{agent}/task").iterdir():
        for pid in (task / "children").read_text().split():
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            ranks = [e.split(b"=", 1)[1] for e in env if e.startswith(b"RANK=")]
            if ranks:
                out[int(ranks[0])] = int(pid)
    return out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(PY).parent)) is None, reason="torchrun not installed")
def test_suite_under_torchrun_writes_once_and_resumes_after_a_rank_dies(tmp_path):
    suite, out = tmp_path / "suite.yaml", tmp_path / "out"
    suite.write_text(SUITE)
    cmd = [str(Path(PY).parent / "torchrun"), "--nproc_per_node=2", "--master_port", str(_free_port()),
           "-m", "ssl_bench", "run", str(suite), "--out", str(out), "--quiet"]
    agent = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, ckpt = time.time() + 180, None
    while time.time() < deadline and agent.poll() is None:  # SimCLR done, BYOL mid-training
        found = list(out.glob("runs/byol-*/checkpoint.pt"))
        if found and (out / "results.jsonl").exists() and not (found[0].parent / "final.pt").exists():
            ckpt = found[0]
            break
        time.sleep(0.02)
    assert ckpt is not None, agent.communicate()[0][-3000:] if agent.poll() is not None else "no checkpoint"
    os.kill(_worker_pids(agent.pid)[1], signal.SIGKILL)  # rank 1 dies; torchrun stops rank 0
    log = agent.communicate(timeout=120)[0]
    assert agent.returncode != 0, log[-2000:]
    before = _records(out)
    assert {r["method"] for r in before} == {"simclr"}
    assert not (ckpt.parent / "final.pt").exists()

    done = subprocess.run(cmd + ["--resume"], env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    recs = _records(out)
    keys = Counter((r["run_id"], r["eval_key"], r["protocol"], r["metric"]) for r in recs)
    assert all(c == 1 for c in keys.values()), keys  # each result exactly once
    assert {(r["method"], r["metric"]) for r in recs} == {(m, k) for m in ("simclr", "byol") for k in ("top1", "top5")}
    assert all(r["status"] == "ok" and 0 <= r["value"] <= 100 for r in recs), [(r["method"], r["status"]) for r in recs]
    assert [r["timestamp"] for r in recs[:len(before)]] == [r["timestamp"] for r in before]  # SimCLR kept
    metrics = [json.loads(x) for x in (ckpt.parent / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [0, 1, 2]  # resumed from the checkpoint, no epoch logged twice
    assert done.stdout.count("[skip]") == 1  # SimCLR skipped; printing happens on rank 0 only
