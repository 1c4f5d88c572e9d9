"""notebooks/roadmap.ipynb, executed with nbclient: on a folder with no runs and on a generated tree of runs."""

import json
import re

import nbformat
import pytest
from nbclient import NotebookClient

import roadmap

from helpers import ROOT

NOTEBOOK = ROOT / "notebooks" / "roadmap.ipynb"


def execute(runs, monkeypatch):
    """The notebook as committed, executed from its folder with ROADMAP_RUNS=runs; its code cells' outputs."""
    monkeypatch.setenv("ROADMAP_RUNS", str(runs))  # the kernel inherits the environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
                   ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return outputs


def text(outputs, kind="text/plain"):
    return "".join(o.get("text", "") + str(o.get("data", {}).get(kind, "")) for o in outputs)


def generated_runs(folder, seeds=2):
    """Summaries as the trainer writes them (with roadmap.json next to them) for every step of the ConvNeXt-T
    roadmap but kernel_9; top-1 70 + step order / 4 ± 0.1 over the seeds; one epoch of metrics for the first
    step, three for the others. Returns {step: mean top-1}."""
    rm = roadmap.load_roadmap("convnext_t")
    folder.mkdir(parents=True)
    (folder / "roadmap.json").write_text(json.dumps(rm.to_dict()))
    means = {}
    for s in rm.steps:
        if s.name == "kernel_9":
            continue
        means[s.name] = 70 + s.order / 4
        for seed in range(seeds):
            d = folder / s.name / f"seed{seed}"
            d.mkdir(parents=True)
            top1 = means[s.name] + (0.1 if seed else -0.1)
            (d / "summary.json").write_text(json.dumps({
                "step": s.name, "parent": s.parent, "order": s.order, "label": s.label, "section": s.section,
                "adopted": s.adopted, "roadmap": "convnext_t", "scale": "embedded", "seed": seed,
                "dataset": "fashion_mnist", "status": "done", "params": 1000 + s.order, "gmacs": 0.01 * s.order,
                "ablation": None, "paper_top1": s.top1, "paper_gmacs": s.gmacs, "final_top1": top1,
                "best_top1": top1 + 0.1, "fingerprint": {"model": {}}}))
            epochs = (1,) if s.order == 0 else (1, 2, 3)
            (d / "metrics.jsonl").write_text("".join(
                json.dumps({"epoch": e, "train_loss": 1 / e, "val_top1": top1 - 3 + e}) + "\n" for e in epochs))
    return means


@pytest.mark.parametrize("exists", [False, True], ids=["missing-folder", "empty-folder"])
def test_notebook_without_runs_says_what_to_run(tmp_path, monkeypatch, exists):
    runs = tmp_path / "runs"
    if exists:
        runs.mkdir()
    outputs = execute(runs, monkeypatch)
    lines = [line for line in text(outputs).splitlines() if line.strip()]
    assert lines == [f"no runs under {runs}: run `make roadmap` (or `python run.py -m +sweep=roadmap`) first, "
                     "or set ROADMAP_RUNS to a runs folder"]
    assert not [o for o in outputs if "image/png" in o.get("data", {})]


def test_notebook_on_generated_runs(tmp_path, monkeypatch):
    runs = tmp_path / "runs" / "embedded" / "convnext_t"
    means = generated_runs(runs)
    outputs = execute(runs, monkeypatch)
    plain = text(outputs)
    assert f"{2 * len(means)} runs of {len(means)} steps, roadmap convnext_t, scale embedded" in plain
    html = text(outputs, "text/html")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr>\s*<th>\d+</th>\s*<td>\d+</td>\s*<td>(\w+)</td>.*?</tr>",
                                                         html, re.S)}
    assert set(means) | {"kernel_9"} == set(rows)
    for step in ("resnet50", "separate_downsampling"):
        assert f"<td>{means[step]:.2f}</td>" in rows[step]
    assert "<td>missing</td>" in rows["kernel_9"]
    assert any("Spearman" in str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3  # roadmap, transfer, learning curves
    assert (runs / "report" / "roadmap.png").exists() and (runs / "report" / "transfer.png").exists()


def test_notebook_reads_metrics_whose_last_line_a_kill_cut(tmp_path, monkeypatch):
    """A metrics.jsonl that ends in a cut line (what a kill leaves) gives its whole lines as the learning curve,
    as roadmap.store reads it."""
    runs = tmp_path / "runs" / "embedded" / "convnext_t"
    generated_runs(runs)
    with open(runs / "gelu" / "seed0" / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "train_lo')
    outputs = execute(runs, monkeypatch)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3  # roadmap, transfer, learning curves
    assert "no metrics.jsonl" not in text(outputs)
