"""The docs site (`make docs`, docs/conf.py) builds strictly from the README and the guides, and fails on what it
cannot link."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONF = runpy.run_path(str(DOCS / "conf.py"))


def sphinx(src: Path, out: Path) -> subprocess.CompletedProcess:
    """`make docs`' build: strict (-W), of `src` with the site's conf.py."""
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-c", str(DOCS),
                           str(src), str(out)], capture_output=True, text=True, timeout=300)


def test_the_site_builds_strictly_with_every_page(tmp_path):
    done = sphinx(DOCS, tmp_path)
    assert done.returncode == 0, done.stderr
    pages = {p.stem for p in tmp_path.glob("*.html")}
    guides = {p.stem for p in DOCS.glob("*.md")}
    assert guides <= pages, guides - pages
    index = (tmp_path / "index.html").read_text()
    assert "I want to" in index and 'href="getting-started.html#train-one-step"' in index  # the README, its links
    assert '<img alt="The roadmap reproduced' in index and (tmp_path / "_images" / "roadmap.png").stat().st_size > 0
    started = (tmp_path / "getting-started.html").read_text()
    assert 'href="benchmarks.html#make-test-the-suite-s-wall-time-2026-12-01"' in started  # ../benchmarks/RESULTS.md
    assert '<span class="pre">roadmap/store.py</span>' in started  # a source file: its path
    api = (tmp_path / "api.html").read_text()
    for name in ("roadmap.build_model", "roadmap.load_roadmap", "roadmap.from_torchvision", "roadmap.ModelConfig",
                 "roadmap.report.report", "roadmap.report.step_table", "roadmap.train.train"):
        assert f'id="{name}"' in api, name
    assert "The network of a roadmap step" in api  # build_model's docstring


def test_a_broken_link_anchor_or_lost_page_fails_the_build(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.md").write_text("# Home\n\n[other](other.md#there)\n\n```{toctree}\nother\n```\n")
    (src / "other.md").write_text("# Other\n\n## Here\n\n[gone](gone.md) and [a file](../../nope.py)\n")
    (src / "lost.md").write_text("# Lost\n\nin no toctree\n")
    done = sphinx(src, tmp_path / "out")
    assert done.returncode != 0
    problems = sorted(re.findall(r"(\w+\.md):\d+: WARNING: (.*?) \[myst\.xref_missing\]", done.stderr))
    assert problems == [("index.md", "local id not found in doc 'other': 'there'"),
                        ("other.md", "'myst' cross-reference target not found: '../../nope.py'"),
                        ("other.md", "'myst' cross-reference target not found: 'gone.md'")], done.stderr
    assert re.search(r"lost\.md: WARNING: document isn't included in any toctree", done.stderr), done.stderr


def test_links_become_what_the_site_has():
    guide, readme = DOCS / "getting-started.md", ROOT / "README.md"
    assert CONF["site_links"]("[← README](../README.md)", guide) == "[← README](index.md)"
    assert CONF["site_links"]("[r](../benchmarks/RESULTS.md#gpu)", guide) == "[r](benchmarks.md#gpu)"
    assert CONF["site_links"]("[g](docs/exploration.md#workers)", readme) == "[g](exploration.md#workers)"
    assert CONF["site_links"]("![fig](docs/roadmap.png)", readme) == "![fig](roadmap.png)"
    assert CONF["site_links"]("[roadmap/store.py](../roadmap/store.py)", guide) == "`roadmap/store.py`"
    assert CONF["site_links"]("[steps](../conf/step/)", guide) == "steps (`conf/step/`)"
    assert CONF["site_links"]("[x](https://a.b/c.md) [y](#here)", guide) == "[x](https://a.b/c.md) [y](#here)"
    assert CONF["site_links"]("[gone](../roadmap/gone.py)", guide) == "[gone](../roadmap/gone.py)"  # left to fail
    code = "```text\n[a](../README.md)\n```\n"
    assert CONF["site_links"](code, guide) == code
