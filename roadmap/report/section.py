"""What every section of the report is given and how it writes its figures: the output folder, the suffix of its
files, its title and the dataset's name (Section); a figure as .png and .pdf (save_figure), and one figure that fails
as a warning line, never the whole report (drawn)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Section:
    """Where and under what title one table's section is written."""
    out: Path  # the report's folder
    suffix: str  # what its files' names end with ("" for the only table; "_<scale>_<roadmap>", "_isolated", ...)
    title: str  # the heading of its part of results.md, and its figures' title
    dataset: str  # the data its top-1 is measured on, by its name

    def stem(self, name: str) -> Path:
        """The path, without extension, of the section's file `name` (roadmap, speed, ...)."""
        return self.out / f"{name}{self.suffix}"


def save_figure(fig, path_stem: Path) -> list[Path]:
    """`fig` written as `path_stem`.png and .pdf; those paths."""
    written = []
    for ext in ("png", "pdf"):
        path = path_stem.with_suffix(f".{ext}")
        fig.savefig(path, dpi=130, bbox_inches="tight")
        written.append(path)
    return written


def drawn(stem: Path, draw) -> list[Path]:
    """The files `draw()` writes, or none and a warning line when it fails: one figure never costs the tables or the
    other figures of the report."""
    try:
        return draw()
    except Exception as e:  # any failure of one figure (matplotlib's, or a bug): the report goes on without it
        warnings.warn(f"{stem.name}.png/.pdf not written: {type(e).__name__}: {e}", stacklevel=2)
        return []
