"""Folder images decoded in batches by torchvision's decode_jpeg (ssl_bench.data.gpu_decode), run here with the
CPU as the "device": pixels against PIL (full decode + PIL bicubic), sizes exactly, mixed JPEG/PNG/CMYK folders,
corrupt files reported by name, grayscale, the decode param, and evaluations reading folders through workers."""
import io
import shutil

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn

from ssl_bench.data import gpu_decode
from ssl_bench.create import create_dataset
from ssl_bench.data.image_folder import check_params
from ssl_bench.data.loader import iterate_batches
from ssl_bench.data.types import FolderBatch, ImageSet
from ssl_bench.errors import DatasetError, UserError
from ssl_bench.evalkit.features import extract

LOAD = 16
# (height, width): smaller than LOAD (never enlarged), shorter side over LOAD, wider than 2:1 (longer side
# capped at 2 * LOAD), large enough that PIL's draft would have used a DCT-scaled decode
SIZES = [(11, 14), (23, 17), (40, 64), (13, 50), (70, 30), (96, 128), (19, 19), (33, 90)]
# Tolerance: decode_jpeg (libjpeg-turbo) and PIL decode the same JPEG to identical pixels (both the exact
# integer IDCT); PIL's bicubic rounds to uint8 between its horizontal and vertical passes, torch's float
# interpolation once at the end: one level per pass at most.
MAX_DIFF = 2


def smooth_image(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    """A smooth pattern plus mild noise: JPEG-friendly, so both resize kernels see the same signal."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    planes = [128 + 90 * np.sin(x / (5 + k) + seed) * np.cos(y / (7 + k) - k) for k in range(channels)]
    img = np.stack(planes, -1) + rng.normal(0, 6, (h, w, channels))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[..., 0] if channels == 1 else img


def imagenet_layout(base, classes=("n01", "n02"), sizes=SIZES, gray_every=0) -> list:
    """base/train/<class>/*.JPEG and base/val/<class>/*.JPEG; returns the train files."""
    files = []
    for split in ("train", "val"):
        for c, cls in enumerate(classes):
            (base / split / cls).mkdir(parents=True)
            for i, (h, w) in enumerate(sizes):
                gray = gray_every and i % gray_every == 0
                img = Image.fromarray(smooth_image(h, w, seed=10 * c + i, channels=1 if gray else 3))
                path = base / split / cls / f"{cls}_{i}.JPEG"
                img.save(path, "JPEG", quality=90, progressive=i % 3 == 1)  # baseline and progressive
                if split == "train":
                    files.append(path)
    return files


def expected_size(h: int, w: int, max_short: int) -> tuple[int, int]:
    scale = min(1.0, max_short / min(h, w), 2 * max_short / max(h, w))
    return (h, w) if scale == 1.0 else (max(1, round(h * scale)), max(1, round(w * scale)))


def pil_reference(path, max_short: int, mode: str = "RGB") -> torch.Tensor:
    """PIL full-size decode (no draft), then PIL bicubic to the reduced size."""
    with Image.open(path) as img:
        img.load()
        img = img.convert(mode)
    h, w = expected_size(img.height, img.width, max_short)
    if (h, w) != (img.height, img.width):
        img = img.resize((w, h), Image.BICUBIC)
    return TF.pil_to_tensor(img)


def whole_images(data: ImageSet, batch_size: int, num_workers: int = 0):
    """(image C x h x w, label) per sample in dataset order, after checking the canvas layout."""
    out = []
    for batch, y in iterate_batches(data, batch_size, shuffle=False, generator=None, drop_last=False, device="cpu",
                                    num_workers=num_workers):
        assert isinstance(batch, FolderBatch) and batch.pixels.dtype == torch.uint8
        assert batch.pixels.shape[1] == data.channels
        for img, (h, w), lab in zip(batch.pixels, batch.sizes.tolist(), y):
            assert img[:, h:].eq(0).all() and img[:, :, w:].eq(0).all()  # zero canvas beyond the image
            out.append((img[:, :h, :w], int(lab)))
    return out


def assert_close(got: torch.Tensor, ref: torch.Tensor, max_diff: int = MAX_DIFF):
    assert got.shape == ref.shape
    diff = (got.int() - ref.int()).abs()
    assert diff.max() <= max_diff and diff.float().mean() <= 0.5, (diff.max(), diff.float().mean())


def test_device_path_matches_pil_and_keeps_exact_sizes(tmp_path):
    imagenet_layout(tmp_path)
    b = create_dataset("image_folder", str(tmp_path), path=str(tmp_path), load_size=LOAD, decode="device")
    assert b.train.decode == "device" and b.test.decode == "device" and b.pretrain_images.decode == "device"
    seen = whole_images(b.test, batch_size=5)
    assert "_raw" in b.test.__dict__ and "_decoded" not in b.test.__dict__  # the batched decoder ran
    assert len(seen) == len(b.test.paths) == 2 * len(SIZES)
    for (img, lab), path, y in zip(seen, b.test.paths, b.test.labels.tolist()):
        with Image.open(path) as im:
            assert img.shape[1:] == expected_size(im.height, im.width, LOAD)
        assert lab == y
        assert_close(img, pil_reference(path, LOAD))


def test_mixed_jpeg_png_cmyk_folder_through_two_workers(tmp_path):
    imagenet_layout(tmp_path, sizes=SIZES[:4])
    png = tmp_path / "train" / "n01" / "z_png.png"
    Image.fromarray(smooth_image(21, 45, seed=3)).save(png)
    cmyk = tmp_path / "train" / "n02" / "z_cmyk.JPEG"  # 4 components: decoded by PIL in the worker
    Image.fromarray(smooth_image(25, 18, seed=4)).convert("CMYK").save(cmyk, "JPEG", quality=95)
    disguised = tmp_path / "train" / "n02" / "z_png_named.JPEG"  # a PNG with a JPEG name (ImageNet has one)
    Image.fromarray(smooth_image(12, 40, seed=5)).save(disguised, "PNG")
    data = ImageSet(labels=torch.tensor([0] * 5 + [1] * 6), load_size=LOAD, decode="device",
                    paths=sorted(str(p) for p in (tmp_path / "train" / "n01").iterdir())
                    + sorted(str(p) for p in (tmp_path / "train" / "n02").iterdir()))
    seen = whole_images(data, batch_size=4, num_workers=2)
    assert [lab for _, lab in seen] == data.labels.tolist()
    for (img, _), path in zip(seen, data.paths):
        ref = pil_reference(path, LOAD)
        if path in (str(png), str(cmyk), str(disguised)):  # the CPU path's own decode: the same pixels
            assert torch.equal(img, ref), path
        else:
            assert_close(img, ref)


def test_device_decodable_reads_the_frame_header():
    def encoded(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()

    rgb = Image.fromarray(smooth_image(9, 12, seed=0))
    assert gpu_decode.device_decodable(encoded(rgb))
    assert gpu_decode.device_decodable(encoded(rgb, progressive=True))
    assert gpu_decode.device_decodable(encoded(rgb.convert("L")))
    assert not gpu_decode.device_decodable(encoded(rgb.convert("CMYK")))
    assert not gpu_decode.device_decodable(encoded(rgb, "PNG"))
    assert not gpu_decode.device_decodable(b"\xff\xd8" + bytes(64))
    assert not gpu_decode.device_decodable(encoded(rgb)[:4])


def test_corrupt_jpegs_are_reported_by_name(tmp_path):
    imagenet_layout(tmp_path, sizes=SIZES[:3])
    good = tmp_path / "train" / "n01" / "n01_0.JPEG"
    raw = good.read_bytes()
    truncated = tmp_path / "train" / "n01" / "truncated.JPEG"  # header parses; the batched decoder rejects it
    truncated.write_bytes(raw[:len(raw) // 2])
    garbage = tmp_path / "train" / "n02" / "garbage.JPEG"  # JPEG magic, no frame header: PIL in the worker
    garbage.write_bytes(b"\xff\xd8" + bytes(200))
    for bad in (truncated, garbage):
        data = ImageSet(labels=torch.zeros(2, dtype=torch.long), paths=[str(good), str(bad)], load_size=LOAD,
                        decode="device")
        with pytest.raises(DatasetError, match=rf"{bad.name}.*cannot be decoded"):
            whole_images(data, batch_size=2)


def test_batch_rejection_retries_alone_then_falls_back_to_pil(tmp_path, monkeypatch, capsys):
    files = imagenet_layout(tmp_path, sizes=SIZES[:4])[:4]
    data = ImageSet(labels=torch.arange(4), paths=[str(p) for p in files], load_size=LOAD, decode="device")
    real = gpu_decode._decode
    calls = []
    refused = files[2].read_bytes()

    def picky(payloads, device, channels):  # rejects any batch of several, and one file even alone
        calls.append(len(payloads))
        if len(payloads) > 1 or payloads[0].numpy().tobytes() == refused:
            raise RuntimeError("Error while decoding JPEG images")
        return real(payloads, device, channels)

    monkeypatch.setattr(gpu_decode, "_decode", picky)
    monkeypatch.setattr(gpu_decode, "_warned_fallback", False)
    seen = whole_images(data, batch_size=4)
    assert calls == [4, 1, 1, 1, 1]
    err = capsys.readouterr().err
    assert "did not decode" in err and files[2].name in err
    for (img, _), path in zip(seen, files):
        assert_close(img, pil_reference(path, LOAD))


@pytest.mark.parametrize("channels", [1, 3])
def test_grayscale_and_gray_files(tmp_path, channels):
    files = imagenet_layout(tmp_path, sizes=SIZES[:6], gray_every=2)[:6]  # gray and colour JPEGs mixed
    data = ImageSet(labels=torch.zeros(6, dtype=torch.long), paths=[str(p) for p in files], load_size=LOAD,
                    channels=channels, decode="device")
    seen = whole_images(data, batch_size=3)
    for (img, _), path in zip(seen, files):
        # PIL decodes a colour JPEG to L as libjpeg's luma plane, as decode_jpeg's GRAY mode does; a gray
        # JPEG read as RGB repeats its one plane
        assert_close(img, pil_reference(path, LOAD, "L" if channels == 1 else "RGB"))


def test_decode_param_is_validated(tmp_path):
    imagenet_layout(tmp_path, sizes=SIZES[:2])
    with pytest.raises(UserError, match=r"params\.decode: bad value 'gpu'.*allowed: auto"):
        create_dataset("image_folder", str(tmp_path), path=str(tmp_path), decode="gpu")
    with pytest.raises(UserError, match=r"datasets\[0\]\.params\.decode: bad value 'GPU'"):
        check_params({"path": str(tmp_path), "decode": "GPU"}, "datasets[0].params")
    check_params({"path": str(tmp_path), "decode": "device"}, "datasets[0].params")


def test_auto_and_cpu_choose_the_worker_path_off_cuda(tmp_path, monkeypatch):
    cpu = torch.device("cpu")
    assert not gpu_decode.use_device_decode("auto", cpu) and not gpu_decode.use_device_decode("cpu", cpu)
    assert gpu_decode.use_device_decode("device", cpu)  # torchvision decodes JPEGs on the CPU
    monkeypatch.setattr(gpu_decode, "device_decode_supported", lambda device: device == "cuda")
    assert gpu_decode.use_device_decode("auto", torch.device("cuda"))
    assert not gpu_decode.use_device_decode("cpu", torch.device("cuda"))
    with pytest.raises(UserError, match=r"params\.decode: 'device'"):
        gpu_decode.use_device_decode("device", cpu)
    monkeypatch.undo()
    imagenet_layout(tmp_path, sizes=SIZES[:2])
    b = create_dataset("image_folder", str(tmp_path), path=str(tmp_path), load_size=LOAD)
    whole_images(b.test, batch_size=2)
    assert b.test.decode == "auto" and "_decoded" in b.test.__dict__ and "_raw" not in b.test.__dict__


def small_encoder() -> nn.Module:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    return enc.eval()


@pytest.mark.parametrize("decode", ["cpu", "device"])
def test_extract_with_workers_equals_main_process(tmp_path, decode):
    imagenet_layout(tmp_path, sizes=SIZES[:5])
    shutil.copy(tmp_path / "train" / "n01" / "n01_0.JPEG", tmp_path / "train" / "n01" / "copy.JPEG")
    b = create_dataset("image_folder", str(tmp_path), path=str(tmp_path), load_size=LOAD, decode=decode)
    kw = dict(image_size=12, in_chans=3, mean=b.mean, std=b.std, device=torch.device("cpu"), batch_size=3)
    enc = small_encoder()
    f0, y0 = extract(enc, b.train, num_workers=0, **kw)
    f2, y2 = extract(enc, b.train, num_workers=2, **kw)
    assert f0.shape == (len(b.train), 24) and torch.equal(y0, b.train.labels)
    assert torch.equal(f0, f2) and torch.equal(y0, y2)


def test_finetune_predict_with_workers_equals_main_process(tmp_path):
    from ssl_bench.evalkit.finetune import Classifier, InputPrep, predict

    imagenet_layout(tmp_path, sizes=SIZES[:4])
    b = create_dataset("image_folder", str(tmp_path), path=str(tmp_path), load_size=LOAD, decode="device")
    model = Classifier(small_encoder(), 24, b.num_classes, frozen=True)
    prep = InputPrep(12, 3, b.mean, b.std)
    s0, y0 = predict(model, b.test, prep, torch.device("cpu"), batch_size=3, num_workers=0)
    s2, y2 = predict(model, b.test, prep, torch.device("cpu"), batch_size=3, num_workers=2)
    assert torch.equal(s0, s2) and torch.equal(y0, y2) and torch.equal(y0, b.test.labels)
