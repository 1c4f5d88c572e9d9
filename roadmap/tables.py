"""Markdown tables. Every table the project writes (the report, the benchmarks, the GPU check) is made here, by pandas'
to_markdown (tabulate): a header, a rule, a line per row, each column padded to one width so the file reads as a
table in a terminal too. Cells come formatted (strings): a table never reformats a number; a "|" in a cell is
escaped, so it stays in its cell."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd


def markdown(rows: Iterable[Sequence[str]], columns: Sequence[str]) -> list[str]:
    """The lines of a Markdown table with these column headers and rows of formatted cells, one per column."""
    frame = pd.DataFrame([list(r) for r in rows], columns=list(columns), dtype=object)
    bad = [i for i, r in enumerate(frame.itertuples(index=False)) if any(not isinstance(c, str) for c in r)]
    if bad:
        raise TypeError(f"markdown table: row {bad[0]} has a cell that is not formatted text: {list(frame.iloc[bad[0]])}")
    frame = frame.map(lambda c: c.replace("|", "\\|"))  # tabulate does not escape it
    return frame.to_markdown(index=False, tablefmt="github", disable_numparse=True).splitlines()
