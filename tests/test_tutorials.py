"""The tutorials under docs/tutorials/ run as written, top to bottom, in one empty folder (issue 27 item 7).

A fenced block with a `title="FILE"` (```yaml title="tiny.yaml"```) is written to FILE; an untitled ```python
block runs (runpy, as tests/test_readme.py runs the README's); each line of a ```bash block is an `ssl-bench`
command, run through the CLI, that must exit 0 (the shell's `*` expanded as bash would). ```text blocks are
shown, not run (commands for a cluster this machine does not have)."""
from __future__ import annotations

import glob
import re
import runpy
import shlex
from pathlib import Path

import pytest

from ssl_bench.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)
TITLE = re.compile(r'title="([^"/]+)"')


def blocks(text: str) -> list[tuple[str, str | None, str]]:
    """(language, title or None, code) of each fenced block, in order."""
    out = []
    for lang, attrs, code in BLOCK.findall(text):
        title = TITLE.search(attrs)
        out.append((lang, title.group(1) if title else None, code))
    return out


def commands(code: str) -> list[list[str]]:
    """The bash block's commands: backslash continuations joined, comments and blank lines left out."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def expanded(words: list[str]) -> list[str]:
    """A word with `*` becomes the paths it matches, sorted (itself when none), as bash does at run time."""
    return [x for w in words for x in ((sorted(glob.glob(w)) or [w]) if "*" in w else [w])]


def test_blocks_and_commands_parse_as_documented():
    text = '```yaml title="a.yaml"\nx: 1\n```\n```python\nprint(1)\n```\n```bash\nssl-bench list \\\n  methods  # c\n```\n'
    assert blocks(text) == [("yaml", "a.yaml", "x: 1\n"), ("python", None, "print(1)\n"),
                            ("bash", None, "ssl-bench list \\\n  methods  # c\n")]
    assert commands("# only a comment\nssl-bench list \\\n  methods  # c\n") == [["ssl-bench", "list", "methods"]]


def test_every_tutorial_is_in_the_site_nav_and_runs_something():
    nav = (ROOT / "mkdocs.yml").read_text()
    assert len(TUTORIALS) >= 5
    for doc in TUTORIALS:
        assert f"tutorials/{doc.name}" in nav, doc.name
        langs = [lang for lang, _, _ in blocks(doc.read_text())]
        assert "bash" in langs or "python" in langs, doc.name


@pytest.mark.slow
@pytest.mark.parametrize("doc", TUTORIALS, ids=[d.stem for d in TUTORIALS])
def test_tutorial_runs_as_written(doc, tmp_path, monkeypatch, capsys):
    from ssl_bench.registry import REGISTRIES, load_plugins

    load_plugins()  # the built-ins first: a copy taken before would lose them when restored
    for reg in REGISTRIES.values():  # plugins a tutorial registers leave the registries as they were
        monkeypatch.setattr(reg, "_items", dict(reg._items))
    monkeypatch.chdir(tmp_path)
    for i, (lang, title, code) in enumerate(blocks(doc.read_text())):
        if title:
            (tmp_path / title).write_text(code)
        elif lang == "python":
            script = tmp_path / f"_block{i}.py"
            script.write_text(code)
            runpy.run_path(str(script), run_name="__main__")
        elif lang == "bash":
            for argv in commands(code):
                assert argv[0] == "ssl-bench", f"{doc.name} block {i}: {argv} (bash blocks hold ssl-bench commands)"
                code_ = main(expanded(argv)[1:])
                out = capsys.readouterr()
                assert code_ == 0, f"{doc.name} block {i}: {' '.join(argv)} exited {code_}\n{out.err[-2000:]}"
