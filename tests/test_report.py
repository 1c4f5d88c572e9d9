"""The report, the sweeps and the notebook."""

import json
import math

import pandas as pd
import pytest

import roadmap
from roadmap import report

from helpers import ROOT, TINY, run, summary


def fake_runs(root, regime="r50", scale="embedded", ablation=None):
    """Summaries as the trainer writes them: 3 seeds for most steps, one diverged step, one missing step, one
    unreadable file."""
    rng = __import__("random").Random(0)
    expected = {}
    for s in roadmap.steps(regime):
        if s.name == "kernel_9":
            continue  # missing
        seeds = 1 if s.name == "resnet50_classic" else 3
        for seed in range(seeds):
            d = root / scale / regime / (f"{ablation}/" if ablation else "") / s.name / f"seed{seed}"
            d.mkdir(parents=True)
            top1 = 80 + s.order * 0.5 + rng.uniform(-1, 1)
            status = "diverged" if s.name == "layer_norm" else "done"
            body = {"step": s.name, "order": s.order, "regime": regime, "scale": scale, "seed": seed,
                    "dataset": "fashion_mnist", "status": status, "params": 1000 + s.order, "gmacs": 0.01 * s.order,
                    "ablation": ablation, "fingerprint": {"model": {}}}
            if status == "done":
                body.update(final_top1=top1, best_top1=top1 + 0.1)
                expected.setdefault(s.name, []).append(top1)
            (d / "summary.json").write_text(json.dumps(body))
    bad = root / scale / regime / (f"{ablation}/" if ablation else "") / "broken" / "seed0"
    bad.mkdir(parents=True)
    (bad / "summary.json").write_text("{not json")
    return expected


def test_report_tables_and_figures(tmp_path):
    expected = fake_runs(tmp_path / "runs")
    with pytest.warns(UserWarning, match=r"skipping .*broken/seed0/summary.json: unreadable summary"):
        written = report.report(tmp_path / "runs", tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["results.csv", "results.md", "roadmap.pdf", "roadmap.png"]
    for p in written:
        assert p.stat().st_size > 1000 if p.suffix in (".png", ".pdf") else p.stat().st_size > 100
    assert (tmp_path / "out" / "roadmap.png").read_bytes()[:4] == b"\x89PNG"

    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(csv) == sum(len(v) for v in expected.values()) + 3  # + the 3 diverged seeds
    assert set(csv["status"]) == {"done", "diverged"} and "fingerprint" not in csv.columns

    with pytest.warns(UserWarning):
        table = report.step_table(report.load_runs(tmp_path / "runs"), "r50")
    rows = table.set_index("step")
    for name, values in expected.items():
        assert rows.loc[name, "top1_mean"] == pytest.approx(sum(values) / len(values))
        assert rows.loc[name, "seeds"] == len(values)
        if len(values) > 1:
            assert rows.loc[name, "top1_std"] == pytest.approx(pd.Series(values).std(ddof=1))
    assert rows.loc["kernel_9", "status"] == "missing" and math.isnan(rows.loc["kernel_9", "top1_mean"])
    assert rows.loc["layer_norm", "status"] == "diverged" and rows.loc["layer_norm", "seeds"] == 0
    assert rows.loc["gelu", "compared_to"] == "kernel_7" and rows.loc["kernel_5", "compared_to"] == "move_up_dwconv"
    assert rows.loc["gelu", "change"] == pytest.approx(rows.loc["gelu", "top1_mean"] - rows.loc["kernel_7", "top1_mean"])
    assert rows.loc["resnet50", "paper_change"] == pytest.approx(78.82 - 76.13)

    md = (tmp_path / "out" / "results.md").read_text()
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + 17  # header + every step, in roadmap order
    assert lines[1].startswith("| 0 | resnet50_classic |") and lines[-1].startswith("| 16 | separate_downsampling |")
    gelu = next(line for line in lines if "| gelu |" in line)
    g = expected["gelu"]
    mean, std = sum(g) / 3, pd.Series(g).std(ddof=1)
    assert f"| {mean:.2f} ± {std:.2f} | 3 |" in gelu and "| 80.62 ± 0.14 |" in gelu
    assert "| diverged |" in next(line for line in lines if "| layer_norm |" in line)
    assert "| not run |" in next(line for line in lines if "kernel_9" in line)
    assert "kernel_5 (branch)" in md and "Fashion-MNIST" in md


def test_report_cli_and_ablation_groups(tmp_path):
    fake_runs(tmp_path / "runs")
    fake_runs(tmp_path / "runs", ablation="isolated")
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "roadmap.report", str(tmp_path / "runs"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "warning: skipping" in p.stderr
    assert {p.name for p in (tmp_path / "o").iterdir()} == {
        "results.csv", "results.md", "roadmap.png", "roadmap.pdf", "roadmap_isolated.png", "roadmap_isolated.pdf"}
    md = (tmp_path / "o" / "results.md").read_text()
    assert "isolated ablation" in md and "| baseline |" in md.replace("resnet50 |", "baseline |")
    empty = subprocess.run([sys.executable, "-m", "roadmap.report", str(tmp_path / "o")], capture_output=True,
                           text=True, cwd=ROOT)
    assert empty.returncode != 0 and "no summary.json under" in empty.stderr


def test_three_step_multirun_end_to_end_and_skip(tmp_path):
    args = ["-m", "+step=resnet50,stage_ratio,separate_downsampling", *TINY, "train.epochs=1"]
    p = run(*args, runs_root=tmp_path)
    for step in ("resnet50", "stage_ratio", "separate_downsampling"):
        assert summary(tmp_path / f"embedded/r50/{step}/seed0")["status"] == "done"
        assert f"[{step}] done: top-1" in p.stdout
    again = run(*args, runs_root=tmp_path)
    assert again.stdout.count("already finished (done)") == 3 and "epoch 1/1" not in again.stdout
    written = report.report(tmp_path / "embedded" / "r50", tmp_path / "report")
    md = written[1].read_text()
    assert "| 16 | separate_downsampling |" in md and "not run" in md  # the 14 other steps are missing
    glob = run("-m", "+step=glob(resnet*)", *TINY, "train.epochs=1", runs_root=tmp_path)
    assert "already finished (done)" in glob.stdout  # resnet50
    assert "step='resnet200' is not a step of regime r50" in glob.stderr  # the other regime's baseline is skipped
    assert summary(tmp_path / "embedded/r50/resnet50_classic/seed0")["recipe"] == "classic"


def test_failed_step_does_not_stop_the_sweep(tmp_path):
    p = run("-m", "+step=gelu,layer_norm", *TINY, "train.epochs=1", "recipe.lr=1e12", "recipe.warmup=0",
            runs_root=tmp_path)
    assert summary(tmp_path / "embedded/r50/gelu/seed0")["status"] == "diverged"
    assert summary(tmp_path / "embedded/r50/layer_norm/seed0")["status"] == "diverged"
    assert p.returncode == 0


def test_sweep_configs_select_the_regime_steps_in_order():
    import yaml

    from roadmap.config import CONF_DIR, compose
    params = yaml.safe_load((CONF_DIR / "sweep" / "roadmap.yaml").read_text())["hydra"]["sweeper"]["params"]
    for regime in ("r50", "r200"):
        names = [compose([f"+step={n}", f"regime={regime}"]).step for n in params["+step"].split(",")]
        assert names == roadmap.step_names(regime)


def test_ablation_networks():
    from roadmap.ablation import ablated
    from roadmap.config import step_model_config
    configs = lambda name: step_model_config(name)  # noqa: E731
    iso = ablated("isolated", "kernel_7", "r50", configs)
    assert iso == step_model_config("resnet50").__class__(**{**step_model_config("resnet50").__dict__,
                                                             "kernel_size": 7})
    loo = ablated("leave_one_out", "layer_norm", "r50", configs)
    assert loo.norm == "batch" and loo.downsampling == "separate" and loo.kernel_size == 7
    assert ablated("leave_one_out", "resnet50", "r50", configs) == step_model_config("separate_downsampling")
    assert ablated("isolated", "resnet50", "r50", configs) == step_model_config("resnet50")
    with pytest.raises(roadmap.ConfigError, match="activations='one'"):
        ablated("isolated", "fewer_activations", "r50", configs)


def test_isolated_sweep_runs_through_run_py(tmp_path):
    p = run("-m", "+sweep=isolated", "+step=kernel_7", *TINY, "train.epochs=1", runs_root=tmp_path)
    s = summary(tmp_path / "embedded/r50/isolated/kernel_7/seed0")
    assert s["ablation"] == "isolated" and s["status"] == "done", p.stderr
    cfg = (tmp_path / "embedded/r50/isolated/kernel_7/seed0/config.yaml").read_text()
    assert "ablation: isolated" in cfg


def test_notebook_executes_on_generated_runs(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    fake_runs(tmp_path / "runs")
    for d in (tmp_path / "runs").rglob("seed*"):
        if (d / "summary.json").read_text().startswith("{\"step\""):
            (d / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "train_loss": 1 / e, "val_top1": 80 + e})
                                                     + "\n" for e in (1, 2, 3)))
    nb = nbformat.read(ROOT / "notebooks" / "roadmap.ipynb", as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace('RUNS = Path("../runs/embedded/r50")',
                                                    f'RUNS = Path("{tmp_path / "runs" / "embedded" / "r50"}")')
    assert str(tmp_path) in nb.cells[0].source
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
                   ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "separate_downsampling" in text


def test_slurm_launcher_config_composes():
    from hydra import compose, initialize_config_dir

    from roadmap.config import CONF_DIR, register

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", ["+sweep=roadmap", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1 and launcher.max_num_timeout == 20


def test_report_logs_to_wandb_offline(tmp_path):
    import os
    import subprocess
    import sys

    fake_runs(tmp_path / "runs")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}
    p = subprocess.run([sys.executable, "-m", "roadmap.report", str(tmp_path / "runs"), "--wandb"],
                       capture_output=True, text=True, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1
