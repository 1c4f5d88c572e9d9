"""The report's section on a roadmap's own runs: the step table, the reference networks trained beside it
(roadmap.report.reference), agreement<suffix>.json, the roadmap and transfer figures, and the sections on speed
(roadmap.report.speed) and robustness (roadmap.report.robustness) of its steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from roadmap.report import figures
from roadmap.report import reference as reference_report
from roadmap.report.formatting import strict_json
from roadmap.report.paper_agreement import agreement
from roadmap.report.robustness import robustness_section
from roadmap.report.runs import Group, ordered_steps
from roadmap.report.section import Section, drawn
from roadmap.report.speed import speed_section
from roadmap.report.step_markdown import markdown
from roadmap.report.step_stats import step_table
from roadmap.steps import Roadmap


def roadmap_section(group: Group, roadmap: Roadmap, section: Section, bench: pd.DataFrame | None,
                    device: str | None) -> tuple[pd.DataFrame, list[str], list[Path]]:
    """A roadmap's own runs (`group`: those that count, and those left out for the notes): the step table, the
    reference networks trained beside it, agreement.json, the roadmap, transfer, speed and robustness figures; the
    table (references last), the Markdown and the paths written. `bench`: read_bench's rows of the benchmark of
    `device`."""
    counted, runs = group.counted, group.runs
    refs_runs, all_refs = counted[reference_report.is_reference(counted)], runs[reference_report.is_reference(runs)]
    counted, runs = counted[~reference_report.is_reference(counted)], runs[~reference_report.is_reference(runs)]
    table = step_table(runs, ordered_steps(roadmap, counted))
    refs = reference_report.reference_table(all_refs, table, roadmap) if len(all_refs) else None
    agree = agreement(table)
    both = table if refs is None else pd.concat([table, refs.assign(order=len(table) + np.arange(len(refs)))],
                                                ignore_index=True)
    robust_text, robust_files, robust = robustness_section(both, pd.concat([counted, refs_runs]), roadmap.baseline,
                                                           section)
    if not robust.empty:
        both = both.merge(robust.drop(columns=["order", "label", "adopted", "section", "clean_top1"]), on="step",
                          how="left")
        agree["robustness"] = {v: list(robust.loc[robust["corrupted_verdict"] == v, "step"])
                               for v in ("helps", "hurts")}
    md = [markdown(table, section.title, section.dataset, roadmap, agree, runs=runs)]
    if refs is not None:
        agree["references"] = reference_report.agreement(refs)
        md.append(reference_report.markdown(refs, section.title, section.dataset))
    path = section.out / f"agreement{section.suffix}.json"
    path.write_text(json.dumps(strict_json(agree), indent=1, allow_nan=False) + "\n")
    written = [path, *_figures(table, refs, agree, roadmap, section)]
    text, files = speed_section(both, bench, device, section)
    return both, [*md, text, robust_text], written + files + robust_files


def _figures(table: pd.DataFrame, refs: pd.DataFrame | None, agree: dict, roadmap: Roadmap,
             section: Section) -> list[Path]:
    """The roadmap figure (with the references trained alike) and the transfer figure; the paths written."""
    title, dataset = section.title, section.dataset
    stem, transfer = section.stem("roadmap"), section.stem("transfer")
    return [*drawn(stem, lambda: figures.figure(table, stem, title, dataset, roadmap, references=refs)),
            *drawn(transfer, lambda: figures.transfer_figure(table, transfer, title, dataset, roadmap, agree))]
