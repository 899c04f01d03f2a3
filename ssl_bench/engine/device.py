"""Device and precision policy: which device a rank trains on, whether autocast pays on it, and how a run names
its device and peak memory. One place, so the config layer (the run hash sees the resolved precision), the
suite runner, the trainer and the benchmarks agree."""
from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import torch

from ssl_bench.engine.process_group import refuse_pinned_cuda
from ssl_bench.errors import UserError

AMP_NAMES = {None: "off", torch.float16: "fp16", torch.bfloat16: "bf16"}


def resolve_device(name: str) -> torch.device:
    """auto/cuda: GPU LOCAL_RANK under torchrun. cuda:N is refused there: it would put every rank on GPU N."""
    refuse_pinned_cuda(name)
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


def native_bf16(device: torch.device) -> bool:
    """bf16 math in hardware: CUDA with bf16 support, or a CPU with AVX512-BF16 / AMX."""
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """auto: bf16 on GPUs that support it (fp16 otherwise); on CPUs only with native bf16 instructions
    (emulated bf16 made a BYOL step about 10x slower on an AVX2 CPU: README, Hardware notes)."""
    if amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def amp_name(dtype: torch.dtype | None) -> str:
    """The suite spelling of an autocast dtype (resolve_amp's result)."""
    return AMP_NAMES[dtype]


def resolved_amp_name(amp: str, device_name: str) -> str:
    """pretrain.amp with "auto" replaced by what resolve_amp picks for that pretrain.device on this machine,
    without touching the device (validate and the run hash call this before any device is set up)."""
    if amp != "auto":
        return amp
    cuda = torch.cuda.is_available() and (device_name == "auto" or device_name.startswith("cuda"))
    return amp_name(resolve_amp("auto", torch.device("cuda" if cuda else "cpu")))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine() or "cpu"


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
