"""The pieces of benchmarks/throughput.py: generated data, argument parsing, the peer-style folder dataset and the
engine runner's clock. The benchmark itself is never run here (benchmarks/ is scripts, not a package)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import folder_data  # noqa: E402
import harness  # noqa: E402
import throughput  # noqa: E402
from reference_loop import FolderTwoViewDataset, two_view_dataset  # noqa: E402
from ssl_bench.create import create_dataset  # noqa: E402
from ssl_bench.data.types import ImageSet  # noqa: E402
from ssl_bench.errors import UserError  # noqa: E402
from ssl_bench.registry import load_plugins  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return folder_data.jpeg_folder(30, root=tmp_path_factory.mktemp("jpegs") / "f", processes=1)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_jpeg_folder_is_imagenet_layout_of_mixed_size_jpegs(folder):
    train = sorted((folder / "train").iterdir())
    assert [d.name for d in train] == [f"n{c:08d}" for c in range(10)]
    assert sorted(d.name for d in (folder / "val").iterdir()) == [d.name for d in train]
    files = sorted((folder / "train").rglob("*"))
    assert len([f for f in files if f.is_file()]) == 30 and all(f.suffix == ".jpg" for f in files if f.is_file())
    assert (folder / "train" / "n00000003" / "img_0000013.jpg").is_file()  # image i in class i % 10
    sizes = set()
    for f in folder.rglob("*.jpg"):
        with Image.open(f) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            sizes.add(im.size)
    assert all(200 <= w <= 500 and 150 <= h <= 400 for w, h in sizes)
    assert len(sizes) >= 40  # 50 images (30 train + 20 val): sizes drawn at random, nearly all different


def test_jpeg_folder_is_deterministic_and_topped_up_as_a_prefix(folder, tmp_path):
    other = folder_data.jpeg_folder(30, root=tmp_path / "again", processes=1)
    assert _files(other) == _files(folder)
    before = _files(other)
    folder_data.jpeg_folder(35, root=other, processes=1)
    after = _files(other)
    assert len(after) == len(before) + 5 and all(after[k] == v for k, v in before.items())


def test_jpeg_folder_reads_through_ssl_bench_image_folder(folder):
    load_plugins()
    bundle = create_dataset("image_folder", None, False, path=str(folder))
    assert bundle.num_classes == 10
    assert len(bundle.pretrain_images) == 30 and not bundle.pretrain_images.in_memory  # train + val hold-out
    assert len(bundle.test) == 20  # val/ is the ImageNet layout's test split


def test_synthetic_cifar_shape_and_determinism():
    assert folder_data.CIFAR_SHAPE == (50_000, 3, 32, 32)
    a, labels = folder_data.synthetic_cifar(512)
    b, _ = folder_data.synthetic_cifar(512)
    assert a.shape == (512, 3, 32, 32) and a.dtype == torch.uint8 and torch.equal(a, b)
    assert labels.tolist() == [i % 10 for i in range(512)]
    assert abs(a.float().mean().item() - 127.5) < 2 and int(a.min()) == 0 and int(a.max()) == 255
    assert not torch.equal(a, folder_data.synthetic_cifar(512, seed=1)[0])


def test_folder_reference_dataset_yields_two_views(folder):
    paths = sorted(str(p) for p in (folder / "train").rglob("*.jpg"))
    labels = torch.tensor([int(Path(p).parent.name[1:]) for p in paths])
    data = ImageSet(labels=labels, paths=paths)
    ds = two_view_dataset(data, harness.byol_views(), 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert isinstance(ds, FolderTwoViewDataset) and len(ds) == 30
    torch.manual_seed(0)
    v1, v2, y = ds[13]
    assert v1.shape == v2.shape == (3, 224, 224) and v1.dtype == torch.float32
    assert int(y) == int(Path(paths[13]).parent.name[1:]) and not torch.equal(v1, v2)


def _blur_kernels(pipeline: T.Compose) -> list:
    ops = [t for op in pipeline.transforms for t in (op.transforms if isinstance(op, T.RandomApply) else [op])]
    return [op.kernel_size for op in ops if isinstance(op, T.GaussianBlur)]


def test_peer_view_blurs_above_32_px_only():
    from reference_loop import peer_view

    view = harness.byol_views()[0]
    assert _blur_kernels(peer_view(view, 224, (0.5,), (0.5,))) == [(23, 23)]  # [BYOL Table 6]: 23 at 224 px
    assert _blur_kernels(peer_view(view, 32, (0.5,), (0.5,))) == []


def test_parse_defaults_per_config():
    args = throughput.parse([])
    assert args.configs == ["tiny"] and not args.quick
    assert throughput.plan(args, "tiny") == {"batch": 256, "warmup": 1, "steps": 3, "size": 32}
    args = throughput.parse(["--config", "cifar-r18"])
    assert throughput.plan(args, "cifar-r18") == {"batch": 512, "warmup": 1, "steps": 3, "size": 32}
    args = throughput.parse(["--config", "imagenet-r50", "--device", "cuda"])
    assert throughput.plan(args, "imagenet-r50") == {"batch": 256, "warmup": 10, "steps": 100, "size": 224}
    args = throughput.parse(["--config", "imagenet-r50,tiny", "--batch", "8", "--steps", "2"])
    assert args.configs == ["imagenet-r50", "tiny"]
    assert throughput.plan(args, "tiny") == {"batch": 8, "warmup": 1, "steps": 2, "size": 32}
    assert throughput.parse(["--config", "all"]).configs == ["tiny", "cifar-r18", "imagenet-r50"]


def test_parse_quick_runs_every_config_small_on_one_thread():
    args = throughput.parse(["--quick"])
    assert args.configs == ["tiny", "cifar-r18", "imagenet-r50"] and args.device == "cpu" and args.threads == 1
    plans = {n: throughput.plan(args, n) for n in args.configs}
    assert plans == {"tiny": {"batch": 16, "warmup": 1, "steps": 1, "size": 32},
                     "cifar-r18": {"batch": 8, "warmup": 1, "steps": 1, "size": 32},
                     "imagenet-r50": {"batch": 4, "warmup": 1, "steps": 1, "size": 96}}
    assert throughput.parse(["--quick", "--config", "cifar-r18", "--threads", "2"]).configs == ["cifar-r18"]
    assert throughput.parse(["--quick", "--threads", "2"]).threads == 2


@pytest.mark.parametrize("argv, field, bad", [
    (["--config", "cifar"], "--config", "cifar"),
    (["--config", "tiny,imagenet"], "--config", "imagenet"),
    (["--batch", "0"], "--batch", "0"),
    (["--warmup", "0"], "--warmup", "0"),
    (["--levers", "--config", "cifar-r18"], "--levers", "cifar-r18"),
])
def test_parse_rejects_bad_values_naming_them(argv, field, bad):
    with pytest.raises(UserError) as err:
        throughput.parse(argv)
    msg = str(err.value)
    assert msg.startswith(field) and bad in msg and "allowed" in msg


def test_bad_choice_of_an_argparse_option_exits():
    with pytest.raises(SystemExit):
        throughput.parse(["--prefetch", "maybe"])


def test_engine_runner_times_the_asked_steps_with_the_engine_clock():
    """The tiny model on 24 random 1-channel images: 1 warm-up + 2 timed steps of 8."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (24, 1, 32, 32), generator=gen, dtype=torch.uint8)
    data = harness.BenchData("random", ImageSet(labels=torch.zeros(24, dtype=torch.long), images=images),
                             (0.5,), (0.25,))
    out = harness.run_engine(data, torch.device("cpu"), 8, 1, 2, 0, amp_dtype=None, channels_last=False,
                             concat=False, compile=False, data_on_device=False, prefetch="off")
    assert len(out["step_s"]) == 2 and out["images_per_s"] > 0
    assert out["clock"] == "on_step"
    assert out["prefetch"] is False


@pytest.mark.slow  # ~20 s: loads Fashion-MNIST and trains 2 methods 2 steps each, twice
def test_method_speed_quick_runs_a_multicrop_and_a_two_view_method(capsys):
    """benchmarks/method_speed.py --quick: the engine, the model-only step and the augmentation of each method,
    one table line per method with multi-crop's views spelled out (smoke run: the numbers are not checked)."""
    import method_speed

    rows = method_speed.main(["--quick", "--methods", "byol,dino"])
    out = capsys.readouterr().out
    assert method_speed.SMOKE in out and [r["method"] for r in rows] == ["byol", "dino"]
    assert [r["views"] for r in rows] == ["2x32", "2x32 + 6x14"]  # DINO: 2 global + 6 local crops (96/224 of 32)
    for r in rows:
        assert r["engine_img_s"] > 0 and r["model_only_img_s"] > 0 and r["augment_ms_per_image"] > 0
        assert len(r["runs"]["engine_s"]) == len(r["runs"]["model_only_s"]) == 1  # one timed pair
    assert rows[0]["augment_vs_2view"] == pytest.approx(1.0)  # BYOL is the only 2-view method here
    assert "dino        2x32 + 6x14" in out


def test_method_speed_arguments():
    import method_speed

    args = method_speed.parse([])
    assert (args.batch, args.steps, args.warmup, args.heads) == (256, 5, 1, "default")
    assert method_speed.parse(["--quick"]).heads == "small"
    with pytest.raises(SystemExit, match="--methods: bad value 'nope'"):
        method_speed.trainable_methods("nope")
    assert "random" not in method_speed.trainable_methods(None) and "dino" in method_speed.trainable_methods(None)
