"""The report of a folder of runs: `python -m roadmap.report RUNS_DIR` (build), with one module per section. What the
notebook and a user's script call is named here."""

from roadmap.report.build import (agreement, agreement_markdown, dataset_of, figure, groups, load_runs, main,
                                  ordered_steps, report, roadmap_of, step_table, transfer_figure)

__all__ = ["agreement", "agreement_markdown", "dataset_of", "figure", "groups", "load_runs", "main", "ordered_steps",
           "report", "roadmap_of", "step_table", "transfer_figure"]
