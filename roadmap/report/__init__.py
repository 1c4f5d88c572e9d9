"""The report of a folder of runs: `python -m roadmap.report RUNS_DIR` (build), with one module per section. What the
notebook and a user's script call is named here."""

from roadmap.report.build import main, report
from roadmap.report.figures import figure, transfer_figure
from roadmap.report.paper_agreement import agreement, agreement_markdown
from roadmap.report.runs import dataset_of, groups, load_runs, ordered_steps, roadmap_of
from roadmap.report.step_stats import step_table

__all__ = ["agreement", "agreement_markdown", "dataset_of", "figure", "groups", "load_runs", "main", "ordered_steps",
           "report", "roadmap_of", "step_table", "transfer_figure"]
