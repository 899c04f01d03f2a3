"""Issue #18: the next batch's views built in a background thread (engine/prefetch.py, `pretrain.prefetch`).

The reference is always the serial loop: the same augmentation called inline, batch after batch, from a generator
seeded alike. Tiny data (sklearn digits, 1 x 8 x 8) and a narrow resnet18 keep every test to a few CPU steps."""
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_bench.create import create_backbone
from ssl_bench.data.augment import MultiViewAugment, ViewRecipe
from ssl_bench.create import create_dataset
from ssl_bench.data.types import ImageSet
from ssl_bench.engine.prefetch import THREAD_NAME, Prefetcher, resolve_prefetch
from ssl_bench.engine.trainer import TrainSettings, pretrain
from ssl_bench.errors import DatasetError, UserError
from ssl_bench.method import OPTIM_DEFAULTS
from ssl_bench.methods.byol import BYOL
from ssl_bench.config.suite import parse_suite

from conftest import metrics_rows

CPU = torch.device("cpu")
BATCH = 16


def digits(n: int = 4 * BATCH) -> ImageSet:
    return create_dataset("digits").train.subset(torch.arange(n))


def byol_augment() -> MultiViewAugment:
    bundle = create_dataset("digits")
    recipes = [ViewRecipe.from_dict({**ViewRecipe().to_dict(), **v}, "views") for v in BYOL.augmentation["views"]]
    return MultiViewAugment(recipes, 8, bundle.mean, bundle.std)


def tiny_byol() -> BYOL:
    torch.manual_seed(0)
    backbone = create_backbone("resnet18", in_chans=1, image_size=8, channels=[8, 8, 8, 8], stem_width=8)
    return BYOL(backbone, num_classes=10, proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32)


def settings(prefetch: bool, **kw) -> TrainSettings:
    optim = {**OPTIM_DEFAULTS, "base_lr": 1.0, "warmup_epochs": 1}
    return TrainSettings(**{"epochs": 2, "batch_size": BATCH, "optim": optim, "device": CPU, "seed": 3,
                            "log_every": 1, "progress": False, "prefetch": prefetch, **kw})


def fresh(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


class Recorded:
    """The augmentation, noting the thread of every call."""

    def __init__(self, augment):
        self.augment, self.threads = augment, []

    def __call__(self, images, gen):
        self.threads.append(threading.current_thread())
        return self.augment(images, gen)


@pytest.mark.slow  # trains 2 epochs four times
@pytest.mark.parametrize("channels_last", [True, False])
def test_prefetch_on_and_off_train_bit_identically(tmp_path, channels_last):
    states, losses = [], []
    for prefetch in (False, True):
        model, augment = tiny_byol(), Recorded(byol_augment())
        stats = pretrain(model, digits(), augment, settings(prefetch, channels_last=channels_last),
                         fresh(tmp_path / str(prefetch)))
        on_main = {t is threading.main_thread() for t in augment.threads}
        assert on_main == {not prefetch}  # with prefetch every view came from the background thread
        assert stats["steps"] == 8 and len(augment.threads) == 8
        states.append(model.state_dict())
        losses.append([(r["step"], r["loss"], r["lr"], r["tau"]) for r in metrics_rows(tmp_path / str(prefetch))])
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    assert len(losses[0]) == 2 and losses[0] == losses[1]  # the same loss, lr and tau in every epoch's row


@pytest.mark.parametrize("name", ["dino", "swav"])
def test_prefetch_on_and_off_train_multicrop_bit_identically(tmp_path, name):
    """2 global + 2 local crops (8 and 4 px), built in one pass per size, whose methods keep state (DINO's
    center, SwAV's queue) and switch schedules by step and epoch."""
    from multicrop_cases import augment, tiny

    states, losses = [], []
    for prefetch in (False, True):
        model, aug = tiny(name), Recorded(augment(name))
        pretrain(model, digits(), aug, settings(prefetch, epochs=3, batch_size=32), fresh(tmp_path / str(prefetch)))
        assert {t is threading.main_thread() for t in aug.threads} == {not prefetch}
        states.append(model.state_dict())
        losses.append([(r["step"], r["loss"], r["lr"], r["tau"]) for r in metrics_rows(tmp_path / str(prefetch))])
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert len(losses[0]) == 3 and losses[0] == losses[1]


def test_views_come_out_in_the_serial_order():
    data, augment = digits(), byol_augment()
    batches = [(data.images[i:i + BATCH], data.labels[i:i + BATCH]) for i in range(0, len(data), BATCH)]
    serial_gen = torch.Generator().manual_seed(7)
    expected = [(augment(x, serial_gen), y) for x, y in batches]
    gen, got = torch.Generator().manual_seed(7), []
    with Prefetcher(iter(batches), lambda x: augment(x, gen), CPU) as fetched:
        for views, labels in fetched:
            torch.randn(64, 64) @ torch.randn(64, 64)  # the training thread's own work meanwhile
            got.append((views, labels))
    assert len(got) == len(expected) == 4
    for (views, labels), (ref_views, ref_labels) in zip(got, expected):
        assert torch.equal(labels, ref_labels)
        assert len(views) == len(ref_views) == 2
        assert all(torch.equal(a, b) for a, b in zip(views, ref_views))
    assert not prefetch_threads()


def test_prefetcher_stays_at_most_one_batch_ahead():
    taken, prepared = [], []

    def prepare(x):
        prepared.append(int(x))
        return [x]

    with Prefetcher(iter([(torch.tensor(i), torch.tensor(i)) for i in range(6)]), prepare, CPU) as fetched:
        for views, _ in fetched:
            taken.append(int(views[0]))
            threading.Event().wait(0.05)  # leave the thread time to run ahead, were it allowed to
            assert len(prepared) <= len(taken) + 1
    assert taken == prepared == list(range(6))


def _failing_batches(exc: BaseException):
    data = digits()
    yield data.images[:BATCH], data.labels[:BATCH]
    raise exc


@pytest.mark.parametrize("where", ["iterator", "prepare"])
def test_an_error_in_the_thread_is_raised_in_the_training_thread(where):
    error = DatasetError("image '/data/cat.png' cannot be decoded (OSError: truncated)")
    if where == "iterator":
        batches, prepare = _failing_batches(error), lambda x: [x]
    else:
        batches = iter([(torch.zeros(1), torch.zeros(1))] * 3)

        def prepare(x):
            raise error

    fetched = Prefetcher(batches, prepare, CPU)
    with pytest.raises(DatasetError, match=r"image '/data/cat\.png' cannot be decoded \(OSError: truncated\)"):
        with fetched:
            for _ in fetched:
                pass
    assert not prefetch_threads()


def test_a_file_that_does_not_decode_stops_pretraining_with_its_dataset_error(tmp_path):
    from PIL import Image

    paths = []
    for i in range(2 * BATCH):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((8, 8), 7 * i, np.uint8)).save(path)
        paths.append(str(path))
    (tmp_path / "img5.png").write_bytes(b"not a png")
    data = ImageSet(labels=torch.zeros(len(paths), dtype=torch.long), paths=paths, load_size=8, channels=1)
    with pytest.raises(DatasetError, match=r"img5\.png' cannot be decoded"):
        pretrain(tiny_byol(), data, byol_augment(), settings(True, epochs=1), fresh(tmp_path / "run"))
    assert not prefetch_threads()


def test_a_step_budget_inside_an_epoch_leaves_no_prefetch_thread(tmp_path):
    before = set(threading.enumerate())
    augment, steps = Recorded(byol_augment()), []
    stats = pretrain(tiny_byol(), digits(), augment, settings(True, total_steps=6), tmp_path, on_step=steps.append)
    assert stats["steps"] == 6 and steps == [1, 2, 3, 4, 5, 6]  # 4 steps per epoch: the 2nd epoch stops after 2
    assert len(augment.threads) == 6  # no batch past the budget is augmented, not even ahead of time
    assert set(threading.enumerate()) == before


@pytest.mark.parametrize("exc", [RuntimeError("the step failed"), KeyboardInterrupt()])
def test_an_exception_in_the_step_stops_the_thread(tmp_path, exc):
    before, clock = set(threading.enumerate()), []

    def on_step(step):
        assert threading.current_thread() is threading.main_thread()
        clock.append(step)
        if step == 2:
            raise exc

    with pytest.raises(type(exc)):
        pretrain(tiny_byol(), digits(), byol_augment(), settings(True), tmp_path, on_step=on_step)
    assert clock == [1, 2]
    assert set(threading.enumerate()) == before


def suite_with(pretrain_extra: str) -> dict:
    import yaml

    return yaml.safe_load(f"""
name: t
datasets: [{{name: digits, image_size: 8}}]
backbones: [{{name: resnet18, kwargs: {{channels: [8, 8, 8, 8]}}}}]
methods: [byol]
pretrain: {{epochs: 1, batch_size: 64{pretrain_extra}}}
evaluations: [knn]
""")


@pytest.mark.parametrize("value", ["yes", 1, 0, "on", [True]])
def test_a_bad_prefetch_value_is_a_user_error_naming_the_field(value):
    raw = suite_with("")
    raw["pretrain"]["prefetch"] = value
    with pytest.raises(UserError) as err:
        parse_suite(raw)
    assert str(err.value) == f"pretrain.prefetch: bad value {value!r}; allowed: auto, true or false"


def test_prefetch_setting_parses_and_resolves_per_device():
    assert parse_suite(suite_with("")).pretrain["prefetch"] == "auto"
    assert parse_suite(suite_with(", prefetch: false")).pretrain["prefetch"] is False
    assert parse_suite(suite_with(", prefetch: true")).pretrain["prefetch"] is True
    assert resolve_prefetch("auto", torch.device("cuda", 1)) is True
    assert resolve_prefetch(True, CPU) is True and resolve_prefetch(False, torch.device("cuda")) is False
    assert resolve_prefetch("auto", CPU) is False  # measured 0.91x on 2 quiet cores (see resolve_prefetch)
    assert resolve_prefetch("auto", torch.device("mps")) is False
