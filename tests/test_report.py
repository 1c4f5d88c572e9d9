"""The report, the sweeps and the notebook."""

import functools
import json
import math
import shutil

import pandas as pd
import pytest
import scipy.stats

import roadmap
from roadmap.report import build as report
from roadmap.report import figures
from roadmap.report.runs import ordered_steps
from roadmap.report.step_stats import step_table
from roadmap.report.ablation import ablation_steps

from helpers import ROOT, TINY, multirun_here, summary, table_rows


def fake_runs(root, name="convnext_t", scale="embedded", ablation=None, seeds=3, effect=None, write_roadmap=True,
              capped=None):
    """Summaries as the trainer writes them: `seeds` seeds for most steps (one for the classic-recipe step), one
    diverged step, one missing step, one unreadable file. `effect(step, seed)` gives a run's top-1 (default:
    0.5 a step plus noise). `capped` ({step: steps per epoch}): those steps' runs record capped epochs of 235 steps,
    the others full ones (when None, no run records its steps per epoch, as older summaries)."""
    rng = __import__("random").Random(0)
    rm = roadmap.load_roadmap(name)
    folder = root / scale / name / (ablation or "")
    folder.mkdir(parents=True, exist_ok=True)
    if write_roadmap:
        (folder / "roadmap.json").write_text(json.dumps(rm.to_dict()))
    expected = {}
    for s in rm.steps:
        if s.name == "kernel_9":
            continue  # missing
        for seed in range(1 if s.name.endswith("_classic") else seeds):
            d = folder / s.name / f"seed{seed}"
            d.mkdir(parents=True)
            top1 = effect(s, seed) if effect else 80 + s.order * 0.5 + rng.uniform(-1, 1)
            status = "diverged" if s.name == "layer_norm" else "done"
            body = {"step": s.name, "parent": s.parent, "order": s.order, "label": s.label, "section": s.section,
                    "adopted": s.adopted, "roadmap": name, "scale": scale, "seed": seed, "dataset": "fashion_mnist",
                    "status": status, "params": 1000 + s.order, "gmacs": 0.01 * s.order, "ablation": ablation,
                    "paper_top1": s.top1, "paper_gmacs": s.gmacs, "fingerprint": {"model": {}}}
            if status == "done":
                body.update(final_top1=top1, best_top1=top1 + 0.1)
                expected.setdefault(s.name, []).append(top1)
            if capped is not None:
                body.update(steps_per_epoch=capped.get(s.name, 235), full_steps_per_epoch=235,
                            capped=s.name in capped)
            (d / "summary.json").write_text(json.dumps(body))
    bad = folder / "broken" / "seed0"
    bad.mkdir(parents=True)
    (bad / "summary.json").write_text("{not json")
    return expected


def step_row(md, step):
    """The row of `step` (as the table names it) in the first step table of results.md."""
    return next(r for r in table_rows(md, "#") if r["step"] == step)


def step_rows(md, step) -> list[dict]:
    """The rows of `step` (as the tables name it) in every step table of results.md, one per section."""
    sections = md.split("\n## ")[1:]
    return [r for s in sections if "\n| # " in s for r in table_rows(s, "#") if r["step"] == step]


def _no_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def table_of(runs_dir):
    runs = report.load_runs(runs_dir)
    return step_table(runs, ordered_steps(report.roadmap_of(runs), runs)).set_index("step")


# what the ablation sweeps of convnext_t cannot build (run.py prints the error and writes nothing for them)
NOT_BUILT = {"isolated": "fewer_activations", "leave_one_out": "move_up_dwconv"}


def invalid(kind, rm, configs) -> dict[str, str]:
    """{step: why} for every step an ablation sweep varies but cannot build: what the sweep records, run by run."""
    from roadmap.ablation import ablated, trunk

    out = {}
    for s in trunk(rm):
        try:
            ablated(kind, s.name, rm, configs)
        except roadmap.ConfigError as e:
            out[s.name] = str(e)
    return out


def fake_ablation(root, kind, seeds=3, effect=None, skip=()):
    """Summaries as `python run.py -m +sweep=<kind>` writes them for convnext_t: the reference (the `baseline`
    entry, in the baseline's folder) and every step the sweep varies but the one it cannot build (and `skip`)."""
    rm = roadmap.load_roadmap("convnext_t")
    folder = root / "embedded" / "convnext_t" / kind
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "roadmap.json").write_text(json.dumps(rm.to_dict()))
    from roadmap import store
    from roadmap.config import step_model_config

    for step, why in invalid(kind, rm, step_model_config).items():  # what the sweep records for those it skips
        store.record(folder / step / "seed0", kind, {"step": step, "reason": why})
    for s in [rm.step(rm.baseline), *(s for s in rm.steps if s.parent and s.adopted and s.name != rm.baseline)]:
        if s.name == NOT_BUILT[kind] or s.name in skip:
            continue
        for seed in range(seeds):
            d = folder / s.name / f"seed{seed}"
            d.mkdir(parents=True)
            top1 = effect(s, seed) if effect else 80 + s.order * 0.5 + seed * 0.1
            (d / "summary.json").write_text(json.dumps({
                "step": s.name, "parent": s.parent, "order": s.order, "label": s.label, "section": s.section,
                "adopted": True, "roadmap": "convnext_t", "scale": "embedded", "seed": seed, "ablation": kind,
                "dataset": "fashion_mnist", "status": "done", "final_top1": top1, "params": 1000 + s.order,
                "gmacs": 0.0018, "paper_top1": s.top1, "paper_gmacs": s.gmacs}))
    return folder


def footnote(fig):
    """The figure's footnote (the legend of its marks)."""
    return next(t for t in fig.texts if t.get_text().startswith("Right of each bar"))


def overlapping_texts(fig):
    """Pairs of visible texts of a drawn figure whose boxes overlap."""
    import itertools

    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip()]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]


def test_report_tables_and_figures(tmp_path):
    expected = fake_runs(tmp_path / "runs")
    with pytest.warns(UserWarning, match=r"skipping .*broken/seed0/summary.json: unreadable summary"):
        written = report.report(tmp_path / "runs", tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["agreement.json", "results.csv", "results.md", "roadmap.pdf", "roadmap.png", "steps.csv",
                     "transfer.pdf", "transfer.png"]
    for p in written:
        assert p.stat().st_size > 1000 if p.suffix in (".png", ".pdf") else p.stat().st_size > 100
    assert (tmp_path / "out" / "roadmap.png").read_bytes()[:4] == b"\x89PNG"

    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(csv) == sum(len(v) for v in expected.values()) + 3  # + the 3 diverged seeds
    assert set(csv["status"]) == {"done", "diverged"} and "fingerprint" not in csv.columns

    with pytest.warns(UserWarning):
        rows = table_of(tmp_path / "runs")
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
    assert rows.loc["resnet50", "compared_to"] == "resnet50_classic" and rows.loc["resnet50", "verdict"] == "1 seed"
    assert rows.loc["layer_norm", "verdict"] == "" and rows.loc["separate_downsampling", "verdict"] == ""
    assert math.isnan(rows.loc["separate_downsampling", "change"])  # its parent diverged: nothing to compare

    md = (tmp_path / "out" / "results.md").read_text()
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + 17 + 0  # header + every step, in roadmap order
    table = table_rows(md, "#")
    assert [table[0]["#"], table[0]["step"]] == ["0", "resnet50_classic"]
    assert [table[-1]["#"], table[-1]["step"]] == ["16", "separate_downsampling"]
    gelu = step_row(md, "gelu")
    g = expected["gelu"]
    mean, std = sum(g) / 3, pd.Series(g).std(ddof=1)
    low, high = scipy.stats.t.interval(0.95, 2, loc=mean, scale=std / 3 ** 0.5)
    assert [gelu["ours top-1"], gelu["95% CI"], gelu["seeds"]] == [f"{mean:.2f} ± {std:.2f}",
                                                                   f"[{low:.2f}, {high:.2f}]", "3"]
    assert gelu["published top-1"] == "80.62 ± 0.14"
    assert step_row(md, "layer_norm")["ours top-1"] == "diverged"
    assert next(r for r in table if "kernel_9" in r["step"])["ours top-1"] == "not run"
    assert "kernel_5 (branch)" in md and "Fashion-MNIST" in md


def test_report_cli_and_ablation_groups(tmp_path, capsys):
    fake_runs(tmp_path / "runs", seeds=1)  # one seed: no seed bootstrap (test_paired_changes_... has it), same files
    fake_ablation(tmp_path / "runs", "isolated")
    code = report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "o")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "warning: skipping" in out.err and str(tmp_path / "o" / "results.md") in out.out.splitlines()
    assert {p.name for p in (tmp_path / "o").iterdir()} == {
        "results.csv", "results.md", "steps.csv", "agreement.json", "roadmap.png", "roadmap.pdf", "transfer.png",
        "transfer.pdf", "roadmap_isolated.png", "roadmap_isolated.pdf"}
    md = (tmp_path / "o" / "results.md").read_text()
    assert "isolated ablation" in md
    iso = md[md.index("isolated ablation"):md.index("\n## ", md.index("isolated ablation"))]
    assert [table_rows(iso, "#")[0][c] for c in ("#", "step", "section")] == ["0", "resnet50", "reference"]
    assert "resnet50_classic" not in iso
    steps = pd.read_csv(tmp_path / "o" / "steps.csv")
    gelu = steps[(steps["step"] == "gelu") & (steps["kind"] == "isolated")].iloc[0]
    assert gelu["compared_to"] == "resnet50" and gelu["pairs"] == 3


def test_bad_input_is_exit_2_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert report.main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: no summary.json under {tmp_path / 'empty'}; train with `python run.py +step=...` first\n"
    assert report.main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing'} is not a directory\n"
    assert not (tmp_path / "empty" / "report").exists() and not (tmp_path / "missing").exists()


@pytest.mark.parametrize("args, name", [(["", "--out", "OUT"], "runs_dir"), (["RUNS", "--out", ""], "--out"),
                                        (["RUNS", "--bench", " "], "--bench")])
def test_an_empty_path_is_refused_never_the_current_folder(tmp_path, capsys, monkeypatch, args, name):
    """`--out "$OUT"` with OUT unset wrote the report into the current folder (an empty path is "."), and an empty
    RUNS_DIR read the runs under it."""
    fake_runs(tmp_path / "runs", seeds=1)
    monkeypatch.chdir(tmp_path / "runs")
    paths = {"RUNS": str(tmp_path / "runs"), "OUT": str(tmp_path / "out")}
    with pytest.raises(SystemExit) as exit:
        report.main([paths.get(a, a) for a in args])
    assert exit.value.code == 2 and capsys.readouterr().err == (f"error: argument {name}: an empty path (see python -m "
                                                                f"roadmap.report --help)\n")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["embedded"]


def test_a_tree_of_only_a_failed_run_is_reported(tmp_path, capsys):
    """What write_failure leaves when a run fails before it trains: no dataset, order, label or numbers."""
    d = tmp_path / "runs" / "embedded" / "convnext_t" / "gelu" / "seed0"
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"step": "gelu", "roadmap": "convnext_t", "scale": "embedded",
                                                "seed": 0, "status": "failed", "message": "RuntimeError: boom"}))
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "results.md").read_text()
    row = next(r for r in table_rows(md, "#") if r["#"] == "0")
    assert row["step"] == "gelu" and row["ours top-1"] == "failed" and row["status"] == "failed"
    assert "- gelu, seed 0: failed: RuntimeError: boom" in md and "top-1 on unknown data" in md
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert list(csv["status"]) == ["failed"] and list(csv["capped"]) == [False]
    steps = pd.read_csv(tmp_path / "out" / "steps.csv")
    assert list(steps["step"]) == ["gelu"] and steps["seeds"].iloc[0] == 0
    agree = json.loads((tmp_path / "out" / "agreement.json").read_text(), parse_constant=_no_constant)
    assert agree["spearman"] is None and agree["sign_total"] == 0


def test_three_step_multirun_end_to_end_and_skip(tmp_path, capsys):
    args = ["+step=resnet50,stage_ratio,separate_downsampling", *TINY, "train.epochs=1"]
    code, out, err = multirun_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 0, err
    for step in ("resnet50", "stage_ratio", "separate_downsampling"):
        assert summary(tmp_path / f"embedded/convnext_t/{step}/seed0")["status"] == "done"
        assert f"[{step}] done: top-1" in out
    code, again, _ = multirun_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 0 and again.count("already finished (done)") == 3 and "epoch 1/1" not in again
    written = report.report(tmp_path / "embedded" / "convnext_t", tmp_path / "report")
    md = written[1].read_text()
    assert step_row(md, "separate_downsampling")["#"] == "16" and "not run" in md  # the 14 other steps are missing
    code, out, err = multirun_here("+step=glob(resnet*)", *TINY, "train.epochs=1", runs_root=tmp_path, capsys=capsys)
    assert code == 0 and "already finished (done)" in out  # resnet50
    assert "step='resnet200' is not a step of roadmap convnext_t" in err  # another roadmap's: skipped
    assert summary(tmp_path / "embedded/convnext_t/resnet50_classic/seed0")["recipe"] == "classic"


def test_failed_step_does_not_stop_the_sweep(tmp_path, capsys):
    code, _, err = multirun_here("+step=gelu,layer_norm", *TINY, "train.epochs=1", "recipe.lr=1e12", "recipe.warmup=0",
                                 runs_root=tmp_path, capsys=capsys)
    assert summary(tmp_path / "embedded/convnext_t/gelu/seed0")["status"] == "diverged"
    assert summary(tmp_path / "embedded/convnext_t/layer_norm/seed0")["status"] == "diverged"
    assert code == 0, err


@pytest.mark.parametrize("name", ["convnext_t", "convnext_b", "bag_of_tricks"])
def test_sweep_configs_select_the_roadmap_steps_in_order(name):
    from hydra import compose, initialize_config_dir

    from roadmap.config import CONF_DIR, register

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", ["+sweep=roadmap", f"roadmap={name}"], return_hydra_config=True)
        trunk = compose("config", ["+sweep=isolated", f"roadmap={name}"], return_hydra_config=True)
    rm = roadmap.load_roadmap(name)
    # every step, then the networks trained alike to compare with (none in bag_of_tricks)
    assert cfg.hydra.sweeper.params["+step"].split(",") == rm.names() + [r.name for r in rm.references]
    assert [r.name for r in rm.references] == {"convnext_t": ["swin_t"], "convnext_b": ["swin_b"]}.get(name, [])
    # `baseline` is the reference; the baseline's own step is not launched again into the same run directory
    expected = ["baseline"] + [s.name for s in rm.steps if s.parent and s.adopted and s.name != rm.baseline]
    assert trunk.hydra.sweeper.params["+step"].split(",") == expected


def test_ablation_sweep_lists_each_network_once():
    from roadmap.ablation import sweep_steps

    steps = roadmap.load_roadmap("convnext_t").to_dict()["steps"]
    listed = sweep_steps(steps, "resnet50").split(",")
    assert listed == ["baseline", "stage_ratio", "patchify_stem", "depthwise_conv", "widen", "inverted_bottleneck",
                      "move_up_dwconv", "kernel_7", "gelu", "fewer_activations", "fewer_norms", "layer_norm",
                      "separate_downsampling"]
    bot = roadmap.load_roadmap("bag_of_tricks")  # its baseline has no parent: only `baseline` names it
    assert sweep_steps(bot.to_dict()["steps"], bot.baseline).split(",") == ["baseline"] + bot.names()[1:]


def test_ablation_networks():
    from roadmap.ablation import ablated
    from roadmap.config import step_model_config
    rm = roadmap.load_roadmap("convnext_t")
    configs = functools.cache(step_model_config)  # each step's config composed once (ablated asks for it often)
    iso = ablated("isolated", "kernel_7", rm, configs)
    assert iso == step_model_config("resnet50").__class__(**{**step_model_config("resnet50").__dict__,
                                                             "kernel_size": 7})
    loo = ablated("leave_one_out", "layer_norm", rm, configs)
    assert loo.norm == "batch" and loo.downsampling == "separate" and loo.kernel_size == 7
    assert ablated("leave_one_out", "resnet50", rm, configs) == step_model_config("separate_downsampling")
    assert ablated("isolated", "resnet50", rm, configs) == step_model_config("resnet50")
    with pytest.raises(roadmap.ConfigError) as e:  # the one line run.py prints names the ablation and the step
        ablated("isolated", "fewer_activations", rm, configs)
    assert str(e.value) == ("ablation=isolated: step fewer_activations's switches (activations) applied alone to the "
                            "baseline are not a valid network: model.activations='one' keeps the activation between "
                            "the two 1x1 convs, which needs model.conv_position='first'")
    assert invalid("leave_one_out", rm, configs) == {"move_up_dwconv": (
        "ablation=leave_one_out: step move_up_dwconv's switches (conv_position) removed from the endpoint are not a "
        "valid network: model.activations='one' keeps the activation between the two 1x1 convs, which needs "
        "model.conv_position='first'")}
    bot = roadmap.load_roadmap("bag_of_tricks")
    bot_configs = functools.cache(lambda name: step_model_config(name, "bag_of_tricks"))
    assert ablated("isolated", "resnet_c", bot, bot_configs).stem == "deep"
    with pytest.raises(roadmap.ConfigError, match="step cosine_lr changes no switch of the network"):
        ablated("isolated", "cosine_lr", bot, bot_configs)


def ablation_table(runs_dir, kind):
    from roadmap.ablation import read_invalid

    runs = report.load_runs(runs_dir)
    group = runs[runs["kind"] == kind]
    rm = report.roadmap_of(group)
    folder = runs_dir / "embedded" / "convnext_t" / kind
    return step_table(group, ablation_steps(rm, group), reference=rm.baseline,
                             invalid=read_invalid(folder, kind)), rm


@pytest.mark.parametrize("kind", ["isolated", "leave_one_out"])
def test_ablation_reports_every_step_and_figures_without_overlaps(tmp_path, kind):
    # values like the embedded runs': a long "39.50 (1.8 MMACs)" beside a large change (+28.67)
    fake_ablation(tmp_path / "runs", kind, effect=lambda s, k: 10.83 if s.name == "resnet50" else 39.5 + k * 0.1,
                  skip={"layer_norm"})
    d = tmp_path / "runs" / "embedded" / "convnext_t" / kind / "layer_norm" / "seed0"  # failed before training
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"step": "layer_norm", "roadmap": "convnext_t", "scale": "embedded",
                                                "seed": 0, "status": "failed", "message": "RuntimeError: boom"}))
    report.report(tmp_path / "runs", tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    assert "## " + md.split("## ", 2)[1].splitlines()[0] == \
        f"## Modernizing a ConvNet: ResNet-50 → ConvNeXt-T: embedded scale — {kind.replace('_', '-')} ablation"
    rows = table_rows(md, "#")
    trunk = ["stage_ratio", "patchify_stem", "depthwise_conv", "widen", "inverted_bottleneck", "move_up_dwconv",
             "kernel_7", "gelu", "fewer_activations", "fewer_norms", "layer_norm", "separate_downsampling"]
    assert [r["step"] for r in rows] == ["resnet50", *trunk]  # the failed run in its group, not the roadmap's
    assert sum(line.startswith("| ") for line in md.splitlines()) == 1 + len(rows)  # the one table: header and rows
    bad = step_row(md, NOT_BUILT[kind])
    assert bad["ours top-1"] == "not built"
    assert "model.activations='one' keeps the activation between the two 1x1 convs" in bad["status"]
    how = "applied alone to the baseline" if kind == "isolated" else "removed from the endpoint"
    assert f"not built: ablation={kind}: step {NOT_BUILT[kind]}'s switches (" in bad["status"] and how in bad["status"]
    assert step_row(md, "layer_norm")["ours top-1"] == "failed" and "- layer_norm, seed 0: failed: " \
        "RuntimeError: boom" in md
    assert ("Change: versus the baseline (the reference row)" if kind == "isolated" else
            "Change: versus the endpoint with every step (the reference row)") in md
    gelu = step_row(md, "gelu")
    diffs = [39.5 + k * 0.1 - 10.83 for k in range(3)]
    ci = scipy.stats.ttest_1samp(diffs, 0).confidence_interval()
    assert gelu["ours top-1"] == "39.60 ± 0.10"
    assert [gelu["change"], gelu["change 95% CI"], gelu["verdict"]] == [
        "+28.77", f"[{ci.low:+.2f}, {ci.high:+.2f}]", "**helps**"]
    steps = pd.read_csv(tmp_path / "out" / "steps.csv").set_index("step")
    assert steps.loc[NOT_BUILT[kind], "status"] == "invalid" and "not a valid network" in steps.loc[
        NOT_BUILT[kind], "note"] and steps.loc["gelu", "compared_to"] == "resnet50"

    table, rm = ablation_table(tmp_path / "runs", kind)
    fig = figures.draw_figure(table, "title", "Fashion-MNIST", rm, kind)
    assert overlapping_texts(fig) == []
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == ("baseline: ResNet-50 (modern recipe)" if kind == "isolated" else "ConvNeXt-T (every step)")
    sign = "+ " if kind == "isolated" else "− "
    assert labels[-1] == sign + "sep. d.s. conv" and labels[1] == sign + "stage ratio"
    assert not any("=" in label for label in labels)
    note = footnote(fig).get_text().replace("\n", " ")
    assert "versus the step it modifies" not in note
    assert ("the change versus the baseline, the first row" if kind == "isolated" else
            "the change versus the endpoint with every step, the first row") in note
    texts = {t.get_text(): t for t in ax.texts}
    assert "not built: not a valid network (results.md says why)" in texts and "failed" in texts
    # every bar's numbers and change inside the axes; the footnote no wider than the rest of the figure
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    for t in ax.texts:
        if t.get_text().startswith(("39.", "10.83", "▲", "▼", "●")):
            box = t.get_window_extent(renderer)
            assert inside.x0 <= box.x0 and box.x1 <= inside.x1, t.get_text()
    assert "39.60  (1.8 MMACs)" in texts and "▲ +28.77" in texts and "10.83  (1.8 MMACs)" in texts
    rest = max(t.get_window_extent(renderer).x1 for t in ax.texts)
    assert footnote(fig).get_window_extent(renderer).x1 <= rest


def test_intervals_are_drawn_within_0_and_100(tmp_path):
    """Two seeds far apart: the t interval of the mean runs far beyond [0, 100]; the figure clips it and says so."""
    spread = {0: 10.0, 1: 30.0}
    fake_runs(tmp_path / "runs", seeds=2, effect=lambda s, k: spread[k] if s.name == "gelu" else 80 + k * 0.2)
    with pytest.warns(UserWarning):
        report.report(tmp_path / "runs", tmp_path / "out")
    with pytest.warns(UserWarning):
        table = table_of(tmp_path / "runs")
    low, high = scipy.stats.t.interval(0.95, 1, loc=20, scale=pd.Series([10.0, 30.0]).std() / 2 ** 0.5)
    assert (table.loc["gelu", "ci_low"], table.loc["gelu", "ci_high"]) == pytest.approx((low, high))  # -107, 147
    with pytest.warns(UserWarning):
        rm = report.roadmap_of(report.load_runs(tmp_path / "runs"))
    fig = figures.draw_figure(table.reset_index(), "title", "Fashion-MNIST", rm)
    ax = fig.axes[0]
    from matplotlib.collections import LineCollection

    ends = [x for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments() for x in seg[:, 0]]
    assert ends and min(ends) >= 0.0 and max(ends) <= 100.0 and min(ends) == 0.0 and max(ends) == 100.0
    assert ax.get_xlim()[0] >= 0.0 and max(ax.get_xticks()) <= 100.0
    note = footnote(fig).get_text().replace("\n", " ")
    assert "Whiskers: 95% t interval of the mean, clipped to [0, 100] (2 end(s) reach beyond it)" in note
    md = (tmp_path / "out" / "results.md").read_text()
    assert f"[{low:.2f}, {high:.2f}]" in md
    assert "- 1 step(s) have a 95% t interval reaching beyond [0, 100] (few seeds, large spread): shown here as " \
           "computed, clipped to [0, 100] in the figure." in md


def test_capped_runs_are_marked(tmp_path):
    """A smoke run whose epochs train.max_steps_per_epoch cut short is marked in every table and the figure; an older
    summary without the fields counts as not capped."""
    fake_runs(tmp_path / "runs", capped={"gelu": 5})
    old = tmp_path / "runs" / "embedded" / "convnext_t" / "widen" / "seed1" / "summary.json"
    body = json.loads(old.read_text())
    for key in ("steps_per_epoch", "full_steps_per_epoch", "capped"):
        body.pop(key)
    old.write_text(json.dumps(body))
    with pytest.warns(UserWarning):
        report.report(tmp_path / "runs", tmp_path / "out")
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert csv["capped"].dtype == bool and sorted(csv.loc[csv["capped"], "step"]) == ["gelu"] * 3
    assert not csv[(csv["step"] == "widen") & (csv["seed"] == 1)]["capped"].iloc[0]
    steps = pd.read_csv(tmp_path / "out" / "steps.csv").set_index("step")
    assert list(steps.index[steps["capped"]]) == ["gelu"] and steps["capped"].sum() == 1
    md = (tmp_path / "out" / "results.md").read_text()
    first = next(line for line in md.splitlines() if "gelu" in line)  # gelu's row, before any note on gelu
    assert [c.strip() for c in first.strip()[1:-1].split("|")][:2] == ["12", "gelu (capped)"]
    assert step_row(md, "gelu (capped)")["#"] == "12"
    assert step_row(md, "kernel_5 (branch)")["#"] == "8"
    assert f"- **capped**: 3 of {len(csv)} runs (1 step(s), marked (capped)) are capped smoke runs: " \
           "train.max_steps_per_epoch cut their epochs short (5 of 235 optimizer steps per epoch). They are not full " \
           "runs." in md
    with pytest.warns(UserWarning):
        table = table_of(tmp_path / "runs").reset_index()
    with pytest.warns(UserWarning):
        rm = report.roadmap_of(report.load_runs(tmp_path / "runs"))
    fig = figures.draw_figure(table, "title", "Fashion-MNIST", rm)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert [label for label in labels if "capped" in label] == ["ReLU → GELU (capped)"]
    assert "Dotted bars, (capped): train.max_steps_per_epoch cut the epochs short (a smoke run, not a full run)." in \
        footnote(fig).get_text().replace("\n", " ")
    assert overlapping_texts(fig) == []


def test_population_members_are_not_flagged_as_capped(tmp_path):
    from test_explore import fake_population

    fake_population(tmp_path / "runs", n=12)
    for path in (tmp_path / "runs").rglob("summary.json"):
        body = json.loads(path.read_text())
        member = body.get("ablation") == "explore"
        body.update(steps_per_epoch=20 if member else 235, full_steps_per_epoch=235, capped=member)
        path.write_text(json.dumps(body))
    report.report(tmp_path / "runs" / "embedded" / "convnext_t", tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    section = md[md.index("design-space exploration"):]
    assert "Population members train on capped epochs (train.max_steps_per_epoch = scale.explore_steps: 20 of 235 " \
           "optimizer steps per epoch), by design" in section
    assert section.count("capped") == 1 and "**capped**" not in md
    assert step_row(md, "separate_downsampling") and "separate_downsampling (capped)" not in md
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert csv.loc[csv["kind"] == "explore", "capped"].all() and not csv.loc[csv["kind"] == "roadmap",
                                                                                   "capped"].any()


def test_isolated_sweep_runs_through_run_py(tmp_path, capsys):
    _, _, err = multirun_here("+sweep=isolated", "+step=kernel_7", *TINY, "train.epochs=1", runs_root=tmp_path,
                              capsys=capsys)
    s = summary(tmp_path / "embedded/convnext_t/isolated/kernel_7/seed0")
    assert s["kind"] == "isolated" and s["status"] == "done", err
    cfg = (tmp_path / "embedded/convnext_t/isolated/kernel_7/seed0/config.yaml").read_text()
    assert "kind: isolated" in cfg


def test_a_users_roadmap_sweeps(tmp_path, capsys):
    """A 3-step roadmap of one's own (two built-in steps and one's own step) sweeps like the paper's."""
    from test_model import write_user_roadmap

    write_user_roadmap(tmp_path / "conf")
    _, _, err = multirun_here("--config-dir", str(tmp_path / "conf"), "+sweep=roadmap", "roadmap=mine", *TINY,
                              "train.epochs=1", runs_root=tmp_path / "runs", capsys=capsys)
    out = tmp_path / "runs" / "embedded" / "mine"
    assert sorted(d.name for d in out.iterdir() if d.is_dir()) == ["dw_kernel_3", "resnet50", "separate_downsampling"]
    assert all(summary(out / n / "seed0")["status"] == "done" for n in ("resnet50", "dw_kernel_3")), err
    assert json.loads((out / "roadmap.json").read_text())["title"] == "ConvNeXt-T and a smaller kernel"
    written = report.report(out, tmp_path / "report")
    md = written[1].read_text()
    assert "## ConvNeXt-T and a smaller kernel: embedded scale" in md
    assert step_row(md, "dw_kernel_3")["#"] == "2" and step_row(md, "separate_downsampling")["#"] == "1"
    table = table_of(out)
    assert table.loc["separate_downsampling", "compared_to"] == "resnet50"
    assert math.isnan(table.loc["dw_kernel_3", "paper_top1"]) and table.loc["resnet50", "paper_top1"] == 78.82


def test_bag_of_tricks_sweeps_through_run_py(tmp_path, capsys):
    """The second published roadmap trains like the first: recipe and network steps, relative batch and epochs."""
    _, _, err = multirun_here("roadmap=bag_of_tricks", "+step=resnet50_original,batch_1024,resnet_d,mixup",
                              "data=synthetic", "model.width_multiplier=0.125", "scale.batch_size=32", "scale.epochs=1",
                              "data.train_size=256", "data.val_size=64", runs_root=tmp_path, capsys=capsys)
    out = tmp_path / "embedded" / "bag_of_tricks"
    s = {n: summary(out / n / "seed0") for n in ("resnet50_original", "batch_1024", "resnet_d", "mixup")}
    assert all(v["status"] == "done" for v in s.values()), err
    assert s["resnet50_original"]["batch_size"] == 32 and s["batch_1024"]["batch_size"] == 128
    assert s["mixup"]["epochs"] == 2 and s["resnet_d"]["precision"] == "bf16"  # mixed precision on a CPU
    assert s["resnet50_original"]["recipe"] == "classic" and s["resnet50_original"]["precision"] == "fp32"
    assert s["resnet_d"]["paper_top1"] == 77.16 and s["resnet_d"]["parent"] == "resnet_c"
    assert s["batch_1024"]["gmacs"] == s["resnet50_original"]["gmacs"] != s["resnet_d"]["gmacs"]
    md = report.report(out, tmp_path / "report")[1].read_text()
    assert "Bag of Tricks" in md and step_row(md, "resnet_b")["#"] == "6"


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

    fake_runs(tmp_path / "runs", seeds=1)  # one seed: no bootstrap over seeds, the same files to log
    env = {k: v for k, v in os.environ.items() if k != "WANDB_DIR"}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", PYTHONPATH=str(ROOT))
    (tmp_path / "cwd").mkdir()
    p = subprocess.run([sys.executable, "-m", "roadmap.report", str(tmp_path / "runs"), "--wandb", "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path / "cwd", env=env,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert len(list((tmp_path / "out" / "wandb").glob("offline-run-*"))) == 1  # beside the report
    assert list((tmp_path / "cwd").iterdir()) == []  # nothing in the current directory


def test_report_wandb_run_goes_beside_the_report(tmp_path, monkeypatch):
    """wandb.init gets the report's folder and the current (non-boolean) reinit."""
    from roadmap.train import tracking

    calls = []

    class Run:
        summary = {}

        def log(self, values):
            calls.append(("log", sorted(values)))

        def finish(self):
            calls.append(("finish",))

    class FakeWandb:
        Image = Table = staticmethod(lambda *a, **k: None)

        @staticmethod
        def init(**kwargs):
            calls.append(("init", kwargs))
            return Run()

    monkeypatch.setattr(tracking, "import_wandb", lambda: FakeWandb)
    paths = [tmp_path / "roadmap.png", tmp_path / "agreement.json"]
    paths[1].write_text(json.dumps({"spearman": 0.5, "spearman_ci": [0.1, 0.9], "steps": ["a"]}))
    report.log_to_wandb(paths, tmp_path / "out")
    assert calls[0] == ("init", {"project": "roadmap", "job_type": "report", "dir": str(tmp_path / "out"),
                                 "reinit": "finish_previous"})
    assert Run.summary == {"agreement/spearman": 0.5, "agreement/spearman_ci": [0.1, 0.9]}
    assert calls[-1] == ("finish",)


def planted(seeds=3):
    """Top-1 of every (step, seed) built from its parent's: seed k moves every step alike (paired seeds cancel it),
    widen adds about +3 on every seed, depthwise_conv about -3, every other step moves +0.3/-0.2/+0.1 (straddles 0)."""
    rm = roadmap.load_roadmap("convnext_t")
    shift = [0.0, 1.0, -1.0, 0.5, -0.5][:seeds]
    delta = {"widen": [3.0, 3.2, 2.8], "depthwise_conv": [-3.0, -2.8, -3.1]}
    values = {}
    for s in rm.steps:
        for k in range(seeds):
            base = values[(s.parent, k)] if s.parent else 75.0 + shift[k]
            values[(s.name, k)] = base + delta.get(s.name, [0.3, -0.2, 0.1])[k % 3]
    return values


def test_paired_changes_verdicts_and_agreement_on_known_values(tmp_path):
    values = planted()
    fake_runs(tmp_path / "runs", effect=lambda s, k: values[(s.name, k)])
    report.report(tmp_path / "runs", tmp_path / "out")
    rows = table_of(tmp_path / "runs")
    assert rows.loc["widen", "verdict"] == "helps" and rows.loc["depthwise_conv", "verdict"] == "hurts"
    assert rows.loc["gelu", "verdict"] == "unresolved" and rows.loc["stage_ratio", "verdict"] == "unresolved"
    assert rows.loc["widen", "change"] == pytest.approx(3.0)
    diffs = [values[("widen", k)] - values[("depthwise_conv", k)] for k in range(3)]
    ci = scipy.stats.ttest_rel([values[("widen", k)] for k in range(3)],
                               [values[("depthwise_conv", k)] for k in range(3)]).confidence_interval()
    assert (rows.loc["widen", "change_ci_low"], rows.loc["widen", "change_ci_high"]) == pytest.approx(
        (ci.low, ci.high))
    assert rows.loc["widen", "pairs"] == 3 and sum(diffs) / 3 == pytest.approx(3.0)
    # the seed shift (±1 point) is much larger than the step effects, yet pairing removes it
    assert rows.loc["widen", "top1_std"] > 0.9 and rows.loc["widen", "change_ci_high"] - \
        rows.loc["widen", "change_ci_low"] < 1.5

    agree = json.loads((tmp_path / "out" / "agreement.json").read_text())
    used = [s for s in agree["steps"]]
    means = [rows.loc[s, "top1_mean"] for s in used]
    paper = [rows.loc[s, "paper_top1"] for s in used]
    assert "layer_norm" not in used and "kernel_9" not in used and len(used) == 15  # diverged, missing
    assert agree["spearman"] == pytest.approx(scipy.stats.spearmanr(means, paper).statistic)
    assert agree["kendall"] == pytest.approx(scipy.stats.kendalltau(means, paper).statistic)
    for key in ("spearman", "kendall"):
        low, high = agree[f"{key}_ci"]
        assert low <= agree[key] <= high and high - low > 0
    assert agree["seeds_min"] == 1 and agree["resamples"] == 2000
    # the adopted path: 13 changes, of which layer_norm (diverged) and separate_downsampling (its parent diverged)
    # have no number; widen and depthwise_conv are resolved and agree in sign with the paper (+2.22, -1.23)
    assert agree["sign_total"] == 11 and agree["resolved_total"] == 2 and agree["resolved_agree"] == 2
    expected = sum((rows.loc[s, "change"] > 0) == (rows.loc[s, "paper_change"] > 0)
                   for s in rows.index if rows.loc[s, "adopted"] and not math.isnan(rows.loc[s, "change"])
                   and not math.isnan(rows.loc[s, "paper_change"]))
    assert agree["sign_agree"] == expected
    md = (tmp_path / "out" / "results.md").read_text()
    assert f"Spearman ρ = {agree['spearman']:.2f} (95% CI {agree['spearman_ci'][0]:.2f} to " in md
    verdicts = {r["verdict"] for r in table_rows(md, "#")}
    assert f"{agree['sign_agree']} of 11" in md and "**helps**" in verdicts and "**hurts**" in verdicts
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    widen = csv[csv["step"] == "widen"]
    assert len(widen) == 3 and set(widen["verdict"]) == {"helps"} and widen["change"].iloc[0] == pytest.approx(3.0)


def test_rank_agreement_intervals_run_over_the_rankings_of_the_drawn_seeds():
    """With two seeds, a bootstrap over seed numbers draws seed 0 twice, seed 1 twice or both (each at least a
    quarter of the time), so its 95% percentile interval runs from the lowest to the highest correlation of those
    three; a step without seed 1 keeps its mean where only seed 1 is drawn."""
    from roadmap.report.stats import rank_agreement

    paper = {"a": 70.0, "b": 72.0, "c": 74.0, "d": 76.0, "e": 78.0}
    seeds = {"a": {0: 71.0, 1: 69.0}, "b": {0: 70.0, 1: 73.5}, "c": {0: 75.0, 1: 72.0}, "d": {0: 74.0, 1: 77.0},
             "e": {0: 79.0}}

    def correlations(drawn):
        means = [sum(v[k] for k in drawn if k in v) / sum(k in v for k in drawn) if any(k in v for k in drawn)
                 else sum(v.values()) / len(v) for v in seeds.values()]
        return (scipy.stats.spearmanr(means, list(paper.values())).statistic,
                scipy.stats.kendalltau(means, list(paper.values())).statistic)

    (rho0, tau0), (rho1, tau1), (rho, tau) = correlations([0]), correlations([1]), correlations([0, 1])
    assert (rho0, rho1, rho) == pytest.approx((0.8, 0.9, 1.0)) and (tau0, tau1, tau) == pytest.approx((0.6, 0.8, 1.0))
    out = rank_agreement(seeds, paper)
    assert (out["spearman"], out["kendall"]) == pytest.approx((rho, tau))
    assert out["spearman_ci"] == pytest.approx([0.8, 1.0]) and out["kendall_ci"] == pytest.approx([0.6, 1.0])
    assert out["seeds_min"] == 1 and out["steps"] == list(paper)


def test_one_seed_and_mixed_trees_give_a_full_table(tmp_path):
    fake_runs(tmp_path / "one", seeds=1)
    report.report(tmp_path / "one", tmp_path / "o1")
    rows = table_of(tmp_path / "one")
    assert len(rows) == 17 and set(rows.loc[rows["seeds"] == 1, "verdict"]) <= {"1 seed", ""}
    assert rows.loc["gelu", "verdict"] == "1 seed" and math.isnan(rows.loc["gelu", "ci_low"])
    text = (tmp_path / "o1" / "agreement.json").read_text()
    agree = json.loads(text, parse_constant=_no_constant)  # strict JSON: no NaN, no Infinity
    assert agree["seeds_min"] == 1 and agree["spearman_ci"] == [None, None] and agree["kendall_ci"] == [None, None]
    assert "NaN" not in text and "null" in text
    assert agree["resolved_total"] == 0 and agree["sign_total"] == 11
    assert (tmp_path / "o1" / "roadmap.png").stat().st_size > 10_000

    # mixed: 3 seeds, then one step with 1 seed, one failed seed, a roadmap.json missing (summaries suffice)
    fake_runs(tmp_path / "mixed", write_roadmap=False)
    folder = tmp_path / "mixed" / "embedded" / "convnext_t"
    for k in (1, 2):
        (folder / "widen" / f"seed{k}" / "summary.json").unlink()
    body = json.loads((folder / "gelu" / "seed2" / "summary.json").read_text())
    body.update(status="failed", message="RuntimeError: boom")
    (folder / "gelu" / "seed2" / "summary.json").write_text(json.dumps(body))
    with pytest.warns(UserWarning):
        report.report(tmp_path / "mixed", tmp_path / "o2")
    with pytest.warns(UserWarning):
        rows = table_of(tmp_path / "mixed")
    # without roadmap.json the summaries give the order; a step nobody ran (kernel_9) is then unknown
    assert list(rows.index) == [s for s in roadmap.load_roadmap("convnext_t").names() if s != "kernel_9"]
    assert rows.loc["widen", "seeds"] == 1 and rows.loc["widen", "verdict"] == "1 seed"
    assert rows.loc["inverted_bottleneck", "verdict"] == "1 seed"  # paired with widen's one seed
    assert rows.loc["gelu", "seeds"] == 2 and rows.loc["gelu", "pairs"] == 2
    assert rows.loc["kernel_5", "seeds"] == 3 and rows.loc["kernel_5", "compared_to"] == "move_up_dwconv"
    md = (tmp_path / "o2" / "results.md").read_text()
    assert step_row(md, "depthwise_conv")["#"] == "4" and step_row(md, "separate_downsampling")["#"] == "15"
    assert (tmp_path / "o2" / "transfer.png").stat().st_size > 10_000


def test_pareto_front_marks_the_steps_nothing_beats_on_both():
    from roadmap.report.speed import pareto_front

    assert pareto_front([1, 2, 3, 2, math.nan], [3, 2, 1, 1, 5]) == [True, True, True, False, False]
    assert pareto_front([1, 1], [2, 2]) == [True, True]  # equal points do not dominate each other


def test_accuracy_against_speed_from_the_runs_and_a_bench_csv(tmp_path):
    runs_dir = tmp_path / "runs"
    fake_runs(runs_dir, effect=lambda s, seed: 80.0 + s.order)  # every later step more accurate
    for path in runs_dir.rglob("summary.json"):
        try:
            s = json.loads(path.read_text())
        except ValueError:
            continue  # the unreadable one
        s["img_s"] = 100.0 if s["step"] == "stage_ratio" else 1000.0 - 10 * s["order"]  # stage ratio: slowest
        path.write_text(json.dumps(s))
    rm = roadmap.load_roadmap("convnext_t")
    bench = tmp_path / "bench_cpu_convnext_t.csv"
    pd.DataFrame([{"step": s.name, "model": "roadmap", "gmacs": 4.0 + 0.1 * s.order, "train_img_s": 50.0 - s.order,
                   "infer_img_s": 9.0 if s.name == "gelu" else 200.0 - s.order} for s in rm.steps]
                 + [{"step": "resnet50", "model": "torchvision", "gmacs": 4.1, "train_img_s": 1, "infer_img_s": 1}]
                 ).to_csv(bench, index=False)
    written = report.report(runs_dir, tmp_path / "out", bench=bench)
    assert {tmp_path / "out" / f"speed.{e}" for e in ("png", "pdf")} <= set(written)
    md = (tmp_path / "out" / "results.md").read_text()
    section = md[md.index("accuracy against measured speed"):]
    # two columns named "front" (the runs' speed's, the benchmark's): table_rows would keep one, read by position
    lines = section[section.index("\n|"):].split("\n\n")[0].strip().splitlines()
    cells = lambda line: [c.strip() for c in line.strip()[1:-1].split("|")]  # noqa: E731
    assert cells(lines[0]) == ["step", "top-1", "GMACs", "train img/s (runs)", "front", "infer img/s (bench)",
                               "train img/s (bench)", "front"]
    rows = {cells(line)[0]: cells(line) for line in lines[2:]}
    assert rows["stage ratio"].count("**front**") == 1  # dominated on the runs' speed, not on the benchmark's
    assert rows["stage ratio"][7] == "**front**"
    assert rows["ReLU → GELU"].count("**front**") == 1  # dominated on the benchmark's inference speed only
    assert rows["ReLU → GELU"][4] == "**front**"
    assert rows['"patchify" stem'].count("**front**") == 2
    assert rows["ResNet-50 (modern recipe)"][3] == "990"  # 1000 - 10 x order 1: the runs' own img/s
    with pytest.raises(report.ReportError, match="no column 'infer_img_s'"):
        pd.DataFrame({"step": ["resnet50"], "model": ["roadmap"], "gmacs": [4.1], "train_img_s": [1]}).to_csv(
            tmp_path / "bad.csv", index=False)
        report.report(runs_dir, tmp_path / "out2", bench=tmp_path / "bad.csv")


# -- like with like, whole reports for any tree of valid runs, one-line errors (issue 30) --------------------------

def rewrite(folder, change):
    """Every readable summary under `folder` replaced by change(summary) (None keeps it as it is)."""
    for path in folder.rglob("summary.json"):
        try:
            body = json.loads(path.read_text())
        except ValueError:
            continue  # fake_runs' unreadable one
        new = change(body)
        if new is not None:
            path.write_text(json.dumps(new))


def test_runs_on_other_data_are_reported_apart_and_never_compared(tmp_path, capsys):
    """The issue's two runs: kernel_7 on Fashion-MNIST, then gelu on synthetic data with kernel 3. Each dataset gets
    its own tables; gelu is not shown as kernel_7's change."""
    from helpers import run_here

    small = ["model.width_multiplier=0.125", "train.batch_size=64", "train.epochs=1", "train.max_steps_per_epoch=2",
             "eval.robustness_images=16"]
    for args in (["+step=kernel_7"], ["+step=gelu", "data=synthetic", "model.kernel_size=3", "data.train_size=256",
                                      "data.val_size=64"]):
        code, _, err = run_here(*args, *small, runs_root=tmp_path / "runs", capsys=capsys)
        assert code == 0, err
    folder = tmp_path / "runs" / "embedded" / "convnext_t"
    assert report.main([str(folder), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert err == ("warning: embedded/convnext_t: the runs differ in dataset (synthetic: gelu/seed0; fashion_mnist: "
                   "kernel_7/seed0); each has tables of its own and no change is measured across them\n")
    md = (tmp_path / "out" / "results.md").read_text()
    sections = md.split("\n## ")[1:]
    assert [s.splitlines()[0] for s in sections] == [
        "Modernizing a ConvNet: ResNet-50 → ConvNeXt-T: embedded scale, synthetic data",
        "Modernizing a ConvNet: ResNet-50 → ConvNeXt-T: embedded scale, Fashion-MNIST"]
    synthetic, fashion = sections
    assert "Ours: top-1 on synthetic data" in synthetic and "Ours: top-1 on Fashion-MNIST" in fashion
    gelu = summary(folder / "gelu" / "seed0")["final_top1"]
    columns = ("#", "section", "ours top-1", "95% CI", "seeds", "change", "change 95% CI", "verdict")
    assert [step_row(synthetic, "gelu (capped)")[c] for c in columns] == [
        "12", "micro design", f"{gelu:.2f}", "", "1", "", "", ""]
    assert [step_row(synthetic, "kernel_7")[c] for c in columns[:3]] == ["9", "large kernel", "not run"]
    assert [step_row(fashion, "gelu")[c] for c in columns[:3]] == ["12", "micro design", "not run"]
    steps = pd.read_csv(tmp_path / "out" / "steps.csv")
    assert steps["change"].isna().all() and list(steps.dropna(subset="top1_mean")["dataset"]) == ["synthetic",
                                                                                                  "fashion_mnist"]
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(csv) == 2 and csv["change"].isna().all() and csv["ci_low"].isna().all()
    for name in ("synthetic", "fashion_mnist"):
        assert (tmp_path / "out" / f"roadmap_{name}.png").stat().st_size > 10_000
        assert json.loads((tmp_path / "out" / f"agreement_{name}.json").read_text())["sign_total"] == 0


def test_a_change_beyond_the_step_is_left_out(tmp_path, capsys):
    """gelu's runs are capped smoke runs and kernel_7's and fewer_activations' full ones: no step caps a run, so
    neither change is measured (verdict `not comparable`), and the line says which key and which values."""
    fake_runs(tmp_path / "runs", seeds=2, capped={"gelu": 5})
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[1:] == [
        "warning: the changes of gelu, fewer_activations are left out: gelu and kernel_7 differ in capped (kernel_7: "
        "False; gelu: True), beyond what gelu changes; fewer_activations and gelu differ in capped (gelu: True; "
        "fewer_activations: False), beyond what fewer_activations changes"]
    md = (tmp_path / "out" / "results.md").read_text()
    row = step_row(md, "gelu (capped)")
    assert row["#"] == "12" and [row["change"], row["change 95% CI"], row["verdict"]] == ["", "", "not comparable"]
    assert "- gelu: change not comparable: gelu and kernel_7 differ in capped (kernel_7: False; gelu: True), beyond " \
           "what gelu changes." in md
    steps = pd.read_csv(tmp_path / "out" / "steps.csv").set_index("step")
    assert steps.loc[["gelu", "fewer_activations"], "verdict"].tolist() == ["not comparable"] * 2
    assert steps.loc[["gelu", "fewer_activations"], "change"].isna().all()
    assert steps.loc["kernel_7", "verdict"] in ("helps", "hurts", "unresolved") and steps["unlike"].notna().sum() == 2
    agree = json.loads((tmp_path / "out" / "agreement.json").read_text())
    assert agree["sign_total"] == 9  # 11 changes along the path with a number, less gelu's and fewer_activations'


def test_a_steps_seeds_are_pooled_only_when_alike(tmp_path, capsys):
    """Seed 2 of gelu trained with kernel 3 (a stray override): it is left out of gelu's numbers, said in one line
    and listed under the table; seeds 0 and 1 are gelu's top-1 and change. fewer_norms' three seeds have three
    kernels: none is the step's, all are left out."""
    values = planted()
    fake_runs(tmp_path / "runs", effect=lambda s, k: values[(s.name, k)])
    stray = {("gelu", 2): 3, ("fewer_norms", 0): 5, ("fewer_norms", 1): 3}

    def switches(body):
        kernel = stray.get((body["step"], body["seed"]), 7 if body.get("order", 0) >= 9 else 3)
        return {**body, "switches": {"kernel_size": kernel, "activation": "gelu" if body["order"] >= 12 else
                                     "relu"}} if body["status"] == "done" else None

    rewrite(tmp_path / "runs", switches)
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[1:] == ["warning: embedded/convnext_t: the runs of fewer_norms differ in kernel_size (5: "
                       "fewer_norms/seed0; 3: fewer_norms/seed1; 7: fewer_norms/seed2); fewer_norms/seed0, "
                       "fewer_norms/seed1, fewer_norms/seed2 left out of fewer_norms's numbers",
                       "warning: embedded/convnext_t: the runs of gelu differ in kernel_size (7: gelu/seed0, "
                       "gelu/seed1; 3: gelu/seed2); gelu/seed2 left out of gelu's numbers"]
    steps = pd.read_csv(tmp_path / "out" / "steps.csv").set_index("step")
    mean = (values[("gelu", 0)] + values[("gelu", 1)]) / 2
    assert steps.loc["gelu", "seeds"] == 2 and steps.loc["gelu", "top1_mean"] == pytest.approx(mean)
    assert steps.loc["gelu", "pairs"] == 2 and steps.loc["fewer_activations", "pairs"] == 2
    md = (tmp_path / "out" / "results.md").read_text()
    assert "- gelu, seed 2: left out: its kernel_size 3 differs from the other runs of gelu (7)" in md
    assert "- fewer_norms, seed 0: left out: its kernel_size 5 differs from the other runs of fewer_norms (3/7)" in md
    assert [step_row(md, "fewer_norms")[c] for c in ("#", "section", "ours top-1", "95% CI", "seeds")] == [
        "14", "micro design", "left out", "", "0"] and steps.loc["fewer_norms", "status"] == \
        "left out" and math.isnan(steps.loc["fewer_norms", "change"])
    csv = pd.read_csv(tmp_path / "out" / "results.csv", keep_default_na=False)
    left = csv[csv["left_out"] != ""]
    assert list(zip(left["step"], left["seed"])) == [("fewer_norms", 0), ("fewer_norms", 1), ("fewer_norms", 2),
                                                     ("gelu", 2)]


def test_a_change_beyond_what_the_step_changes_is_left_out(tmp_path, capsys):
    """Runs record what their step changes (`changes`): gelu trained with kernel 3 (a stray override on every seed)
    against kernel_7's kernel 7, and widen with the classic recipe against depthwise_conv's modern one, were paired
    as GELU's and the width's changes. Runs that do not record it are compared as before (network and training
    free)."""
    fake_runs(tmp_path / "runs", seeds=2)
    published = {"gelu": ["activation"], "widen": ["width"], "kernel_5": ["kernel_size"], "kernel_7": ["kernel_size"],
                 "kernel_11": ["kernel_size"], "fewer_activations": ["activations"]}

    def setting(body):
        if body["status"] != "done":
            return None
        kernel = 3 if body["step"] == "gelu" or body["order"] < 9 else 7
        return {**body, "changes": published.get(body["step"], []), "recipe": "classic" if body["step"] == "widen"
                else "modern", "switches": {"kernel_size": kernel, "activation": "gelu" if body["order"] >= 12 else
                                            "relu"}}

    rewrite(tmp_path / "runs", setting)
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().err.splitlines()[1:] == [
        "warning: the changes of widen, inverted_bottleneck, gelu, fewer_activations are left out: widen and "
        "depthwise_conv differ in recipe (depthwise_conv: modern; widen: classic), beyond what widen changes; "
        "inverted_bottleneck and widen differ in recipe (widen: classic; inverted_bottleneck: modern), beyond what "
        "inverted_bottleneck changes; gelu and kernel_7 differ in kernel_size (kernel_7: 7; gelu: 3), beyond what "
        "gelu changes; fewer_activations and gelu differ in kernel_size (gelu: 3; fewer_activations: 7), beyond what "
        "fewer_activations changes"]
    steps = pd.read_csv(tmp_path / "out" / "steps.csv").set_index("step")
    assert steps.loc[["widen", "inverted_bottleneck", "gelu", "fewer_activations"], "verdict"].tolist() == [
        "not comparable"] * 4
    assert steps.loc["kernel_7", "pairs"] == 2 and steps.loc["stage_ratio", "pairs"] == 2

    rewrite(tmp_path / "runs", lambda b: {k: v for k, v in b.items() if k != "changes"})  # older runs
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out2")]) == 0
    assert "not comparable" not in pd.read_csv(tmp_path / "out2" / "steps.csv")["verdict"].tolist()


def test_the_same_step_and_seed_twice(tmp_path, capsys):
    """Two trees under one folder: a run in both with the same result is counted once; with different results
    both are left out and the line names both; when every run is such a conflict nothing is comparable (exit 2)."""
    fake_runs(tmp_path / "a", seeds=2)
    copy = tmp_path / "b" / "embedded" / "convnext_t"
    for step, top1 in (("gelu", None), ("widen", 12.5)):
        (copy / step / "seed0").mkdir(parents=True)
        body = json.loads((tmp_path / "a" / "embedded" / "convnext_t" / step / "seed0" / "summary.json").read_text())
        (copy / step / "seed0" / "summary.json").write_text(json.dumps({**body, "final_top1": top1 or
                                                                        body["final_top1"]}))
    widen = json.loads((tmp_path / "a/embedded/convnext_t/widen/seed0/summary.json").read_text())["final_top1"]
    gelu = json.loads((tmp_path / "a/embedded/convnext_t/gelu/seed0/summary.json").read_text())["final_top1"]
    assert report.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.splitlines()
    a, b = tmp_path / "a/embedded/convnext_t", tmp_path / "b/embedded/convnext_t"
    assert f"warning: embedded/convnext_t: gelu/seed0 is in the tree twice with the same result ({a}/gelu/seed0: " \
           f"{gelu:g}; {b}/gelu/seed0: {gelu:g}); counted once" in err
    assert f"warning: embedded/convnext_t: widen/seed0 is in the tree twice with different results ({a}/widen/seed0: " \
           f"{widen:g}; {b}/widen/seed0: 12.5); left out" in err
    steps = pd.read_csv(tmp_path / "out" / "steps.csv").set_index("step")
    assert steps.loc["gelu", "seeds"] == 2 and steps.loc["widen", "seeds"] == 1
    md = (tmp_path / "out" / "results.md").read_text()
    assert "- widen, seeds 0, 0: left out: the same step and seed is in the tree twice, with different results" in md

    fake_runs(tmp_path / "c" / "x", seeds=1)  # every run twice, with other results
    fake_runs(tmp_path / "c" / "y", seeds=1, effect=lambda s, k: 50.0)
    assert report.main([str(tmp_path / "c"), "--out", str(tmp_path / "out_c")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"error: nothing comparable under {tmp_path / 'c'}: every finished run is left out (the " \
                      f"warnings say why)"
    assert not (tmp_path / "out_c").exists()


def test_a_finished_run_without_a_top1_is_left_out_and_said(tmp_path, capsys):
    fake_runs(tmp_path / "runs", seeds=2)
    folder = tmp_path / "runs" / "embedded" / "convnext_t"
    rewrite(folder / "gelu" / "seed1", lambda b: {k: v for k, v in b.items() if k != "final_top1"})
    rewrite(folder / "widen" / "seed0", lambda b: {**b, "final_top1": math.nan})  # json writes NaN
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert f"warning: embedded/convnext_t: gelu/seed1 ({folder / 'gelu' / 'seed1'}): its summary says done but " \
           "gives no final_top1 (a number); left out" in err
    steps = pd.read_csv(tmp_path / "out" / "steps.csv").set_index("step")
    assert steps.loc[["gelu", "widen"], "seeds"].tolist() == [1, 1] and steps["top1_mean"].notna().sum() == 15
    md = (tmp_path / "out" / "results.md").read_text()
    assert "nan" not in md and "- widen, seed 0: left out: its summary says done but gives no final_top1 (a " \
                               "number)" in md


def test_seeds_that_agree_exactly_give_a_whole_report(tmp_path, capsys):
    """Every seed of a step at the same corrupted top-1 (runs at chance): the interval has no width (its mean is
    0.7 to a rounding error: 3 x 0.7 / 3 = 0.6999999999999998), so the robustness figure draws no whisker and says
    so, and the report is whole."""
    from roadmap.data.corruptions import CORRUPTIONS

    fake_runs(tmp_path / "runs")
    rewrite(tmp_path / "runs", lambda b: {**b, "robustness": {
        "images": 16, "clean_top1": b["final_top1"], "mean_top1": 0.7, "seconds": 1.0,
        "top1": {c: [0.7] * 3 for c in CORRUPTIONS}}} if b["status"] == "done" else None)
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    assert "not written" not in capsys.readouterr().err
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"agreement.json", "results.md", "robustness.png", "robustness.pdf", "roadmap.png"} <= names
    steps = pd.read_csv(tmp_path / "out" / "steps.csv").set_index("step")
    assert (steps.loc["gelu", "corrupted_ci_low"], steps.loc["gelu", "corrupted_ci_high"]) == (
        steps.loc["gelu", "corrupted_top1"],) * 2
    from roadmap.report.robustness import robustness_figure

    with pytest.warns(UserWarning):
        runs = report.load_runs(tmp_path / "runs")
    table = step_table(runs, ordered_steps(report.roadmap_of(runs), runs))
    from roadmap.report.robustness import robustness_table

    fig = robustness_figure(robustness_table(table, runs, "resnet50"), "t", "Fashion-MNIST", "resnet50")
    assert "no whisker: one seed, or every seed equal" in fig.axes[0].get_title()


def test_a_failing_figure_costs_only_itself(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(figures, "transfer_figure", broken)
    fake_runs(tmp_path / "runs", seeds=2)
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    assert "warning: transfer.png/.pdf not written: RuntimeError: boom" in capsys.readouterr().err.splitlines()
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "agreement.json", "results.csv", "results.md", "roadmap.pdf", "roadmap.png", "steps.csv"}


def module_report(*args, cwd):
    """python -m roadmap.report <args>, as a user runs it (the module is __main__): (exit code, stdout, stderr)."""
    import os
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "roadmap.report", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("content,message", [
    (None, "no such file"), ("", "an empty file; it takes the CSV `make bench` writes"),
    ("model,gmacs\nroadmap,4.1\n", "no column 'step'; it takes the CSV `make bench` writes"),
    ("step,model,gmacs,train_img_s,infer_img_s\nresnet50,roadmap,4.1,,30\ngelu,roadmap,4.1,fast,30\n",
     "column 'train_img_s' holds 'fast' (line 3), not a number; it takes the CSV `make bench` writes")],
    ids=["missing", "empty", "no-step-column", "not-a-number"])
def test_a_bad_bench_csv_is_one_line_before_anything_is_written(tmp_path, content, message):
    fake_runs(tmp_path / "runs", seeds=1)
    bench = tmp_path / "bench.csv"
    if content is not None:
        bench.write_text(content)
    code, out, err = module_report(tmp_path / "runs", "--out", tmp_path / "out", "--bench", bench, cwd=tmp_path)
    assert (code, out, err) == (2, "", f"error: --bench {bench}: {message}\n")
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_cannot_be_is_one_line_before_any_work(tmp_path, capsys):
    fake_runs(tmp_path / "runs", seeds=1)
    (tmp_path / "file").write_text("")
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"error: --out {tmp_path / 'file'}: a file, not a folder\n"
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "file" / "report")]) == 2
    assert capsys.readouterr().err == f"error: --out {tmp_path / 'file' / 'report'}: {tmp_path / 'file'} is a " \
                                      f"file, not a folder\n"
    assert (tmp_path / "file").read_text() == ""


def test_a_corrupt_roadmap_json_is_said_once(tmp_path, capsys):
    fake_runs(tmp_path / "runs")
    fake_ablation(tmp_path / "runs", "isolated")
    group = tmp_path / "runs" / "embedded" / "convnext_t"
    (group / "roadmap.json").write_text('{"name": "convnext_t", "ste')
    (group / "isolated" / "roadmap.json").unlink()
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if "roadmap.json" in line] == [
        f"warning: ignoring {group / 'roadmap.json'}: Unterminated string starting at: line 1 column 24 (char 23)"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert "15" in [r["#"] for r in step_rows(md, "separate_downsampling")]  # from the summaries


@pytest.mark.parametrize("text, why", [
    ("[1, 2]", "not a roadmap (a JSON object of its fields); got [1, 2]"),
    ('{"name": 5, "steps": {}}', "a roadmap needs a `name:` (its file's name); got name=5 and the keys name, steps")])
def test_a_roadmap_json_that_is_no_roadmap_is_said_once_naming_the_file(tmp_path, capsys, text, why):
    """Valid JSON but no object was a TypeError traceback; a roadmap.json the group's runs and its ablation's both
    read was warned about once per folder, naming the folder."""
    fake_runs(tmp_path / "runs")
    fake_ablation(tmp_path / "runs", "isolated")
    group = tmp_path / "runs" / "embedded" / "convnext_t"
    (group / "roadmap.json").write_text(text)
    (group / "isolated" / "roadmap.json").unlink()
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if "roadmap.json" in line] == [f"warning: ignoring {group / 'roadmap.json'}: {why}"]


def test_wandb_without_an_account_is_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch):
    """--wandb with no login was wandb's UsageError traceback after the report was written (and its check,
    wandb.api.api_key, a deprecation line of its own)."""
    pytest.importorskip("wandb")
    for name in ("WANDB_API_KEY", "WANDB_MODE", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: no login
    fake_runs(tmp_path / "runs", seeds=1)
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--wandb"]) == 2
    assert capsys.readouterr().err == ("error: --wandb needs `wandb login` or WANDB_API_KEY; WANDB_MODE=offline needs "
                                       "no account\n")
    assert not (tmp_path / "out").exists()


def test_runs_moved_under_another_roadmaps_folder_are_not_reported_as_that_roadmap(tmp_path, capsys):
    """convnext_t's runs copied into bag_of_tricks' folder were titled, ordered and compared as Bag of Tricks' steps
    (that folder's roadmap.json); their own summaries say which roadmap they are."""
    fake_runs(tmp_path / "a", seeds=1)
    fake_runs(tmp_path / "b", name="bag_of_tricks", seeds=1)
    folder = tmp_path / "runs" / "embedded" / "bag_of_tricks"
    folder.mkdir(parents=True)
    (folder / "roadmap.json").write_text((tmp_path / "b/embedded/bag_of_tricks/roadmap.json").read_text())
    for step in ("resnet50", "stage_ratio"):
        shutil.copytree(tmp_path / "a/embedded/convnext_t" / step, folder / step)
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"warning: ignoring {folder / 'roadmap.json'}: it is roadmap bag_of_tricks's, and runs of roadmap convnext_t "
        f"are under it (moved or copied there)"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert "Bag of Tricks" not in md and [r["step"] for r in step_rows(md, "resnet50")] == ["resnet50"]
    assert "mixup" not in md


def test_a_folder_where_the_report_writes_a_table_is_one_line(tmp_path, capsys):
    """An IsADirectoryError traceback after the figures were written."""
    fake_runs(tmp_path / "runs", seeds=1)
    (tmp_path / "out" / "results.csv").mkdir(parents=True)
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (f"error: --out {tmp_path / 'out'}: cannot write "
                                                        f"{tmp_path / 'out' / 'results.csv'} (Is a directory)")


def test_a_damaged_robustness_record_is_ignored_and_corruptions_one_seed_lacks_are_left_out(tmp_path, capsys):
    """A summary's robustness that is not a record of numbers (a damaged file, another version's) is one warning and
    counts as not measured; a seed that lacks a corruption (an older run) leaves that corruption out of its step's
    columns (both raised a KeyError traceback)."""
    from roadmap.data.corruptions import CORRUPTIONS

    fake_runs(tmp_path / "runs", seeds=2)
    damaged = tmp_path / "runs" / "embedded" / "convnext_t" / "gelu" / "seed0"
    first, *rest = CORRUPTIONS

    def robustness(b):
        if b["status"] != "done":
            return None
        if (b["step"], b["seed"]) == ("gelu", 0):
            return {**b, "robustness": {"x": [1]}}
        corruptions = rest if (b["step"], b["seed"]) == ("widen", 1) else CORRUPTIONS
        return {**b, "robustness": {"images": 16, "clean_top1": 50.0, "mean_top1": 40.0, "seconds": 1.0,
                                    "top1": {c: [40.0] * 3 for c in corruptions}}}

    rewrite(tmp_path / "runs", robustness)
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    assert (f"warning: ignoring the robustness record of {damaged}: not {{mean_top1, images, top1: {{corruption: "
            f"[top-1 per severity]}}}} as numbers") in capsys.readouterr().err.splitlines()
    steps = pd.read_csv(tmp_path / "out" / "steps.csv").set_index("step")
    assert steps.loc["gelu", "corrupted_seeds"] == 1 and steps.loc["widen", "corrupted_seeds"] == 2
    assert math.isnan(steps.loc["widen", f"top1:{first}"]) and steps.loc["widen", f"top1:{rest[0]}"] == 40.0
    assert steps.loc["stage_ratio", f"top1:{first}"] == 40.0
