"""The report's section on an ablation sweep (isolated, leave_one_out; roadmap.ablation runs them): one row for every
step the sweep varies, relabelled as what it adds to the baseline or removes from the endpoint, its change versus
the reference row paired by seed, the steps whose ablated network could not be built with the reason; a table and
roadmap_<kind>.png/.pdf."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from roadmap import store
from roadmap.ablation import read_invalid, trunk
from roadmap.kinds import kind_of
from roadmap.report import comparison, figures
from roadmap.report.formatting import as_text
from roadmap.report.runs import Group
from roadmap.report.section import Section, drawn
from roadmap.report.step_markdown import markdown
from roadmap.report.step_stats import step_table
from roadmap.steps import Roadmap, Step


def change_label(label: str) -> str:
    """A step's label as a change, without the network the roadmap reaches with it ("sep. d.s. conv = ConvNeXt-T"
    names the endpoint, which no ablation row is)."""
    return label.split(" = ", 1)[0]


def ablation_steps(roadmap: Roadmap, runs: pd.DataFrame) -> list[Step]:
    """The rows of an ablation figure: the reference (the `baseline` entry of these sweeps), then every step the sweep
    varies (ablation.trunk), trained or not, relabelled as what it adds to the baseline (isolated) or removes from
    the endpoint (leave_one_out), then any other step the runs trained."""
    kind = runs["kind"].iloc[0]
    base, end = roadmap.get(roadmap.baseline), roadmap.endpoint
    if kind_of(kind).start == "baseline":
        label, prefix = f"baseline: {base.label if base else roadmap.baseline}", "+ "
    else:
        label, prefix = f"{end.label.split(' = ', 1)[1] if ' = ' in end.label else end.name} (every step)", "− "
    rows = [Step(roadmap.baseline, label=label, section="reference")]
    rows += [Step(s.name, parent=roadmap.baseline, label=prefix + change_label(s.label), section=s.section)
             for s in trunk(roadmap)]
    extra = runs[~runs["step"].isin({s.name for s in rows})].drop_duplicates("step")  # e.g. a branch, a user's step
    position = {name: i for i, name in enumerate(roadmap.names())}
    for r in sorted(extra.itertuples(), key=lambda r: (position.get(r.step, len(position)), r.step)):
        s = roadmap.get(r.step)
        rows.append(Step(r.step, parent=roadmap.baseline, section=s.section if s else as_text(r.section),
                         label=prefix + change_label(s.label if s else as_text(r.label, r.step)),
                         branch=bool(s and s.branch)))
    return rows


def ablation_section(group: Group, roadmap: Roadmap, section: Section) -> tuple[pd.DataFrame, list[str], list[Path]]:
    """An ablation sweep's runs (`group`): its step table (no published numbers: the paper ablates nothing alike),
    its Markdown and its figure; the table, the Markdown and the paths written."""
    counted, kind = group.counted, group.kind
    table = step_table(group.runs, ablation_steps(roadmap, counted), reference=roadmap.baseline,
                       invalid=read_invalid(store.folder_of(Path(counted["run_dir"].iloc[0])), kind),
                       fixed=comparison.FIXED_ALIKE)
    table[["paper_top1", "paper_top1_std", "paper_gmacs", "paper_change"]] = math.nan
    stem = section.stem("roadmap")
    written = drawn(stem, lambda: figures.figure(table, stem, section.title, section.dataset, roadmap, kind=kind))
    return table, [markdown(table, section.title, section.dataset, roadmap, None, kind=kind, runs=group.runs)], written
