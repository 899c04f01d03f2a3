"""Run a whole suite: prepare the output folder, walk the matrix, print the table."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch

from . import distributed as dist
from .errors import UserError
from .pretrain_run import RunEnv, execute_run
from .results_store import RESULTS_FILE, ResultsStore
from .run_config import expand
from .suite import Suite


def resolve_device(name: str) -> torch.device:
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"pretrain.device: bad value {name!r}; allowed: cpu or auto (no CUDA device is visible)")
    dev = torch.device(name)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """auto: bf16 on GPUs that support it (fp16 otherwise); on CPUs only with native bf16 instructions.

    Measured on a 2-core AVX2 CPU without avx512_bf16: bf16 autocast made a BYOL step 8x slower.
    """
    if amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def default_out_dir(suite: Suite) -> Path:
    return Path(suite.output["dir"] or Path("results") / suite.name)


def prepare_out_dir(out: Path, suite: Suite, resume: bool, overwrite: bool) -> None:
    """A fresh run never mixes with old results: continue them with --resume or replace them with --overwrite."""
    has_results = (out / RESULTS_FILE).exists() or (out / "runs").exists()
    if has_results and not (resume or overwrite):
        raise UserError(f"--out {out}: folder already holds results; allowed: --resume to continue them, "
                        "--overwrite to start over, or another --out")
    if dist.is_main():
        if overwrite and out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        src = Path(suite.path)
        if src.is_file():
            shutil.copyfile(src, out / "suite.yaml")
    dist.barrier()


def run_suite(suite: Suite, out: Path, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    if suite.pretrain["batch_size"] % dist.world_size():
        raise UserError(f"pretrain.batch_size: bad value {suite.pretrain['batch_size']}; allowed: a multiple of the "
                        f"number of processes ({dist.world_size()}), since it is the global batch")
    device = resolve_device(suite.pretrain["device"])
    prepare_out_dir(out, suite, resume, overwrite)
    store = ResultsStore(out)
    env = RunEnv(suite, out, store, device, resolve_amp(suite.pretrain["amp"], device), resume, progress)
    runs = expand(suite)
    t0 = time.perf_counter()
    if dist.is_main():
        print(f"suite '{suite.name}': {len(runs)} runs x {len(suite.evaluations)} evaluations -> {out} "
              f"(device {device}, amp {env.amp_dtype or 'off'}, {dist.world_size()} process(es))", flush=True)
    done = store.done_keys()
    for spec in runs:
        execute_run(spec, env, done)
    if dist.is_main():
        (out / "suite_timing.json").write_text(json.dumps({"wall_time_s": time.perf_counter() - t0}))
    return out
