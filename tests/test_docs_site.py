"""The documentation site (mkdocs.yml): every page is in the nav, the API reference documents every public name of
`ssl_bench`, and `mkdocs build --strict` succeeds (broken links, missing pages or unresolvable API names fail)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import ssl_bench

ROOT = Path(__file__).resolve().parents[1]


def nav_pages() -> list[str]:
    def walk(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)

    return list(walk(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]))


def test_every_markdown_page_is_in_the_nav():
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(nav_pages()) == pages


def test_api_reference_documents_every_public_name_from_its_module():
    documented = re.findall(r"^::: (\S+)$", (ROOT / "docs" / "api.md").read_text(), re.M)
    public = {name: f"{module}.{name}" for name, module in ssl_bench._API.items()}
    assert sorted(documented) == sorted(public.values())
    for name in public:
        assert getattr(ssl_bench, name) is not None  # the lazy import resolves


def test_the_site_home_page_shows_the_readme_install_command():
    first = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
    readme = first.search((ROOT / "README.md").read_text()).group(1)
    index = first.search((ROOT / "docs" / "index.md").read_text()).group(1)
    assert index == readme


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("run_suite", "register_method", "UserError", "Range"):
        assert f'id="{ssl_bench._API[name]}.{name}"' in api, name  # an anchor per public name
    run_suite_doc = ssl_bench.run_suite.__doc__.split(".")[0].split()[:4]
    assert " ".join(run_suite_doc) in re.sub(r"<[^>]+>|\s+", " ", api)  # the docstring is rendered
    for page in ("add-a-method", "image-folder", "released-weights", "cluster", "reading-tables"):
        assert (tmp_path / "site" / "tutorials" / page / "index.html").is_file()
