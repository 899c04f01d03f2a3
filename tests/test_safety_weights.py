"""Issue #26 items 2c and 3: weights are judged by what they hold, not by their name. A checkpoint whose zip
inflates far past the backbone is refused before torch allocates it; non-finite weights are refused naming the
first bad tensor; dtype casts are recorded; the `pretrained` run id follows the file's content."""
from __future__ import annotations

import io
import os
import re
import struct
import zipfile
from pathlib import Path

import pytest
import torch

import ssl_bench.weights.load as load_module
from ssl_bench.config.run_spec import expand
from ssl_bench.config.suite import load_suite
from ssl_bench.errors import UserError
from ssl_bench.weights.load import load_encoder
from test_pretrained import BACKBONE, _layouts, _net


def zip_bomb(path: Path, numel: int, seed_numel: int = 1_000_003) -> Path:
    """A torch.save file whose one tensor declares `numel` float32s, stored deflated (small on disk): torch.load
    inflates it to numel * 4 bytes. Built from a real save whose numel and shape (both `seed_numel`) are patched."""
    buf = io.BytesIO()
    torch.save({"conv1.weight": torch.zeros(seed_numel)}, buf)
    src = zipfile.ZipFile(buf)
    with zipfile.ZipFile(path, "w", compresslevel=1) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                old = struct.pack("<i", seed_numel)
                assert data.count(old) == 2  # the storage's numel and the tensor's size
                dst.writestr(info, data.replace(old, struct.pack("<i", numel)))
            elif info.filename.endswith("/data/0"):
                member = zipfile.ZipInfo(info.filename)
                member.compress_type = zipfile.ZIP_DEFLATED
                with dst.open(member, "w", force_zip64=True) as f:
                    for _ in range(numel * 4 >> 20):
                        f.write(bytes(1 << 20))
            else:
                dst.writestr(info, data)
    return path


def test_a_checkpoint_that_inflates_past_the_backbone_is_refused_before_torch_loads_it(tmp_path, monkeypatch):
    bomb = zip_bomb(tmp_path / "bomb.pth", 1 << 25)  # 128 MiB of float32 in a ~130 KB file
    assert bomb.stat().st_size < 1 << 20
    assert torch.load(bomb, weights_only=True)["conv1.weight"].numel() == 1 << 25  # a real bomb for torch
    net = _net()
    own = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    loads = []
    monkeypatch.setattr(load_module.torch, "load", lambda *a, **k: loads.append(a) or {})
    with pytest.raises(UserError) as err:
        load_encoder(net, bomb)
    msg = str(err.value)
    unpacked = int(re.search(r"would unpack to (\d+) bytes", msg).group(1))
    assert (1 << 25) * 4 <= unpacked < (1 << 25) * 4 + 4096, msg  # the tensor plus a few small members
    assert f"at most {32 * own + (64 << 20)} bytes" in msg, msg
    assert loads == [] and "\n" not in msg  # refused from the zip directory, nothing inflated


def test_an_ordinary_release_with_its_momentum_copy_and_heads_still_loads(tmp_path):
    torch.save(_layouts(_net(seed=1).state_dict())["moco_v2"], tmp_path / "moco.pth")
    info = load_encoder(_net(), tmp_path / "moco.pth")
    assert info["keys_missing"] == 0 and info["dtype_cast"] is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_first_bad_tensor(tmp_path, bad):
    sd = _net().state_dict()
    name = [k for k, v in sd.items() if v.is_floating_point()][3]
    sd[name] = sd[name].clone().fill_(bad)
    torch.save(sd, tmp_path / "w.pth")
    with pytest.raises(UserError, match=rf"w.pth \(torchvision\): tensor '{name}' holds NaN or inf values"):
        load_encoder(_net(), tmp_path / "w.pth")


@pytest.mark.parametrize("dtype,kind", [(torch.float16, "float16 -> float32"), (torch.int64, "int64 -> float32")])
def test_dtype_casts_are_recorded(tmp_path, dtype, kind):
    sd = _net().state_dict()
    floats = [k for k, v in sd.items() if v.is_floating_point()]
    torch.save({k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}, tmp_path / "w.pth")
    info = load_encoder(_net(), tmp_path / "w.pth")
    assert info["dtype_cast"] == f"{len(floats)} tensor(s) cast to the backbone's dtype: {kind} (first {floats[0]!r})"


def _suite(tmp_path: Path, checkpoint: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: w\ndatasets: [{{name: digits, image_size: 8}}]\nbackbones: [{BACKBONE}]\n"
                    f"methods: [{{name: pretrained, params: {{checkpoint: {checkpoint}}}}}]\n"
                    "pretrain: {epochs: 1, batch_size: 64, amp: off}\nevaluations: [{name: knn, params: {k: 10}}]\n")
    return path


def _run_id(suite: Path) -> str:
    return expand(load_suite(suite), amp="off")[0].run_id


def test_the_pretrained_run_id_follows_the_files_content(tmp_path, monkeypatch):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        torch.save(_net(seed=ord(folder)).state_dict(), tmp_path / folder / "weights.pth")
    monkeypatch.chdir(tmp_path / "a")
    first = _run_id(_suite(tmp_path, "weights.pth"))
    assert _run_id(_suite(tmp_path, "weights.pth")) == first  # same file: same id
    monkeypatch.chdir(tmp_path / "b")  # the same relative path, another folder, other weights
    assert _run_id(_suite(tmp_path, "weights.pth")) != first
    monkeypatch.chdir(tmp_path / "a")
    torch.save(_net(seed=99).state_dict(), "weights.pth")  # replaced in place
    os.utime("weights.pth", ns=(1, 1))
    assert _run_id(_suite(tmp_path, "weights.pth")) != first
