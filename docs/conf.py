"""The docs site (`make docs`): Sphinx with MyST, built from the same Markdown that GitHub shows.

Sphinx rather than mkdocs-material: Sphinx is maintained and documents Python from docstrings by itself (autodoc),
while MkDocs 1.x has no maintainer and Material for MkDocs is in maintenance mode; MyST reads the guides unchanged.

The guides are written for GitHub, so their links point at files of the repository: `../README.md`, the benchmarks'
`../benchmarks/RESULTS.md`, source files and folders (`../roadmap/store.py`, `../conf/step/`). Before MyST parses a
page, `site_links` rewrites each link to what the site has: the README is the front page (index.md includes it),
RESULTS.md is benchmarks.md, and a repository file that is no page of the site becomes its path in code, checked to
exist. A link to nothing is left as it is, so the strict build (`-W`) fails on it, as on a missing #anchor.
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

project = "roadmap"
author = "the roadmap authors"
extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 4  # GitHub's anchors for headings, so the guides' #links hold on the site too
myst_enable_extensions = ["colon_fence"]
html_theme = "furo"
html_title = "roadmap"
default_role = "code"  # the docstrings' `name` is code, as in the guides
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # no torch.nn.Module.forward text under RoadmapNet.forward

# pages of the site that live outside docs/, by their repository path
SITE_PAGES = {ROOT / "README.md": DOCS / "index.md", ROOT / "benchmarks" / "RESULTS.md": DOCS / "benchmarks.md"}
LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(`{3,}|~{3,}).*?^\s*\1", re.S | re.M)


def site_link(match: re.Match, source: Path) -> str:
    """One Markdown link of `source` (a file of the repository) as the site can hold it."""
    image, text, target = match.groups()
    if re.match(r"[a-z]+:|#", target):
        return match.group(0)  # a URL or an anchor on the same page
    file, hash_, anchor = target.partition("#")
    dest = (source.parent / file).resolve()
    if image:
        return f"![{text}]({dest.relative_to(DOCS).as_posix()})" if DOCS in dest.parents else match.group(0)
    page = SITE_PAGES.get(dest, dest if dest.parent == DOCS and dest.suffix == ".md" else None)
    if page is not None:
        return f"[{text}]({page.relative_to(DOCS).as_posix()}{hash_}{anchor})"
    if dest.exists() and ROOT in dest.parents:
        path = dest.relative_to(ROOT).as_posix() + ("/" if dest.is_dir() else "")
        return f"`{path}`" if text.strip("`") in (path, path.rstrip("/")) else f"{text} (`{path}`)"
    return match.group(0)


def site_links(text: str, source: Path) -> str:
    """The links of a Markdown page outside its fenced code blocks, rewritten by `site_link`."""
    out, last = [], 0
    for fence in FENCE.finditer(text):
        out += [LINK.sub(lambda m: site_link(m, source), text[last:fence.start()]), fence.group(0)]
        last = fence.end()
    out.append(LINK.sub(lambda m: site_link(m, source), text[last:]))
    return "".join(out)


def _read(app, docname, content):
    content[0] = site_links(content[0], Path(app.env.doc2path(docname)).resolve())


def _include(app, relative_path, parent_docname, content):
    content[0] = site_links(content[0], (DOCS / relative_path).resolve())


def setup(app):
    app.connect("source-read", _read)
    app.connect("include-read", _include)
