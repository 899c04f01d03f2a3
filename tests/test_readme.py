"""Every Python block of the README and of docs/*.md runs as written (a doctest-style check): a snippet a user
copies must import and work on today's code. The tutorials (docs/tutorials/) run top to bottom, each block after
the ones before it: tests/test_tutorials.py."""
from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md")
                                  if p.relative_to(ROOT / "docs").parts[0] != "tutorials")]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for i, m in enumerate(FENCE.finditer(doc.read_text())):
            out.append((f"{doc.relative_to(ROOT)}#{i}", m.group(1)))
    return out


def test_the_fence_pattern_finds_blocks():
    assert FENCE.findall("text\n```python\nx = 1\n```\n```bash\nls\n```\n") == ["x = 1\n"]


@pytest.mark.parametrize("name,code", python_blocks(), ids=[n for n, _ in python_blocks()])
def test_python_block_runs(name, code, tmp_path, monkeypatch):
    from ssl_bench.registry import REGISTRIES, load_plugins

    load_plugins()  # the built-ins first: a copy taken before would lose them when restored
    for reg in REGISTRIES.values():  # a block that registers a plugin leaves the registries as they were
        monkeypatch.setattr(reg, "_items", dict(reg._items))
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    from ssl_bench.registry import METHODS

    before = set(METHODS.names())
    script = tmp_path / "block.py"
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")
    for new in sorted(set(METHODS.names()) - before):  # a method a block registers also trains one step
        _one_training_step(new)


def _one_training_step(name: str) -> None:
    import torch

    from ssl_bench.create import create_backbone, create_method

    torch.manual_seed(0)
    backbone = create_backbone("resnet18", in_chans=3, image_size=16, small_stem=True, channels=[4, 8, 8, 8],
                               stem_width=4)
    method = create_method(name, backbone)
    views = [torch.randn(8, 3, 16, 16) for _ in method.view_recipes(method.hparams)]
    loss = method(views)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None for p in method.parameters())
