"""Accuracy against measured speed, the argument of the paper's Figure 1 and Table 1, per step: every step's top-1
against the training img/s its own runs measured and, given a `make bench` CSV (`--bench`), against the inference
and training img/s of its published network on the benchmark's device; GMACs as the marker's area, the Pareto front
(no other step both faster and more accurate) marked and listed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from roadmap.errors import ReportError
from roadmap.report.formatting import fmt
from roadmap.report.section import Section, drawn, save_figure
from roadmap.tables import markdown

BENCH_COLUMNS = ("step", "model", "gmacs", "train_img_s", "infer_img_s")


def read_bench(path: Path) -> pd.DataFrame:
    """The roadmap's rows of a `make bench` CSV (benchmarks/bench_<device>_<roadmap>.csv), or a one-line error."""
    if not Path(path).is_file():
        raise ReportError(f"--bench {path}: " + ("a folder, not a CSV file" if Path(path).is_dir() else "no such file"))
    try:
        bench = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ReportError(f"--bench {path}: an empty file; it takes the CSV `make bench` writes") from None
    except (OSError, ValueError) as e:
        raise ReportError(f"--bench {path}: not a readable CSV ({type(e).__name__})") from None
    missing = [c for c in BENCH_COLUMNS if c not in bench]
    if missing:
        raise ReportError(f"--bench {path}: no column {missing[0]!r}; it takes the CSV `make bench` writes")
    for column in BENCH_COLUMNS[2:]:  # numbers, or empty where the benchmark measured none
        numbers = pd.to_numeric(bench[column], errors="coerce")
        odd = bench[column][numbers.isna() & bench[column].notna()]
        if len(odd):
            raise ReportError(f"--bench {path}: column {column!r} holds {odd.iloc[0]!r} (line {odd.index[0] + 2}), "
                              f"not a number; it takes the CSV `make bench` writes")
        bench[column] = numbers
    return bench[bench["model"] == "roadmap"].drop_duplicates("step").set_index("step")


def pareto_front(speed, top1) -> list[bool]:
    """For each point, whether no other point is at least as fast and as accurate and better in one of them (points
    with a missing value are never on the front)."""
    pts = np.column_stack([np.asarray(speed, float), np.asarray(top1, float)])
    ok = ~np.isnan(pts).any(axis=1)
    front = []
    for i, p in enumerate(pts):
        others = pts[ok & (np.arange(len(pts)) != i)]
        dominated = ((others >= p).all(axis=1) & (others > p).any(axis=1)).any()
        front.append(bool(ok[i] and not dominated))
    return front


def speed_table(table: pd.DataFrame, bench: pd.DataFrame | None) -> pd.DataFrame:
    """The finished steps of a roadmap table with their speeds and whether each is on the Pareto front of each."""
    rows = table[table["status"] == "done"][["step", "label", "adopted", "top1_mean", "gmacs", "img_s"]]
    rows = rows.rename(columns={"img_s": "run_train_img_s"}).reset_index(drop=True)
    rows["run_front"] = pareto_front(rows["run_train_img_s"], rows["top1_mean"])
    if bench is not None:
        for column in ("gmacs", "train_img_s", "infer_img_s"):
            rows[f"bench_{column}"] = [bench[column].get(s, np.nan) for s in rows["step"]]
        rows["bench_front"] = pareto_front(rows["bench_infer_img_s"], rows["top1_mean"])
    return rows


def speed_figure(rows: pd.DataFrame, title: str, dataset: str, device: str | None):
    """Top-1 against the runs' training img/s (left) and, with a benchmark, the published networks' inference img/s
    (right); marker area by GMACs, the front joined by a line and its steps labelled."""
    panels = [("run_train_img_s", "gmacs", "run_front", f"training img/s of its runs (on {dataset})")]
    if "bench_infer_img_s" in rows:
        panels.append(("bench_infer_img_s", "bench_gmacs", "bench_front",
                       f"inference img/s of its published network ({device or 'make bench'}, 224px)"))
    fig = Figure(figsize=(6.5 * len(panels), 5.2))
    FigureCanvasAgg(fig)
    for axis, (x, size, front, xlabel) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        _panel(axis, rows, x, size, front, xlabel, f"top-1 (%) on {dataset}")
    fig.suptitle(f"{title}: accuracy against measured speed", fontsize=12)
    fig.tight_layout()
    return fig


def _panel(axis, rows: pd.DataFrame, x: str, size: str, front: str, xlabel: str, ylabel: str) -> None:
    gmacs = rows[size].astype(float)
    area = 30 + 400 * gmacs / max(gmacs.max(), 1e-12)
    colors = ["tab:blue" if a else "tab:gray" for a in rows["adopted"]]
    axis.scatter(rows[x], rows["top1_mean"], s=area, c=colors, alpha=0.6, edgecolors="black", linewidths=0.5)
    on = rows[rows[front]].sort_values(x)
    axis.plot(on[x], on["top1_mean"], color="crimson", lw=1.2, label="Pareto front")
    for r in on.itertuples():
        axis.annotate(r.label, (getattr(r, x), r.top1_mean), fontsize=7, xytext=(4, 4), textcoords="offset points")
    axis.set_xscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend(title="area: GMACs; gray: branch", fontsize=8, title_fontsize=8, loc="lower left")


def speed_section(table: pd.DataFrame, bench: pd.DataFrame | None, device: str | None,
                  section: Section) -> tuple[str, list[Path]]:
    """The section of results.md and the figure speed<suffix>.png/.pdf."""
    rows = speed_table(table, bench)
    if rows.empty or (bench is None and rows["run_train_img_s"].isna().all()):  # summaries without img/s
        return "", []
    title, stem = section.title, section.stem("speed")
    written = drawn(stem, lambda: save_figure(speed_figure(rows, title, section.dataset, device), stem))
    columns = ["step", "top-1", "GMACs", "train img/s (runs)", "front"]
    if bench is not None:
        columns += ["infer img/s (bench)", "train img/s (bench)", "front"]
    lines = [f"### {title}: accuracy against measured speed", "",
             "Top-1 is the mean over seeds; the runs' img/s is their training throughput as measured (it depends "
             "on what else ran on the machine); the benchmark's is the published network's on its device. "
             "**front**: no other step is both faster and more accurate.", ""]
    cells = []
    for r in rows.itertuples():
        row = [f"{r.label}", f"{r.top1_mean:.2f}", f"{r.gmacs:.4f}", f"{r.run_train_img_s:.0f}",
               "**front**" if r.run_front else ""]
        if bench is not None:  # a reference network has no row in the benchmark
            row += [fmt(r.bench_infer_img_s, 1), fmt(r.bench_train_img_s, 1), "**front**" if r.bench_front else ""]
        cells.append(row)
    lines += markdown(cells, columns)
    return "\n".join(lines) + "\n", written
