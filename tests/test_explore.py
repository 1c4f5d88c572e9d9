"""Design-space exploration: stable ids, the analysis of a population in the report, and a small exploration end
to end through run.py (the study itself: tests/test_study.py)."""

import json
import random
import subprocess
import sys

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

import roadmap
from roadmap.report import build as report
from roadmap.config import CONF_DIR
from roadmap.explore.space import SWITCHES
from roadmap.nets.identity import network_id, switches

from helpers import ROOT, TINY, multirun_here, table_rows


def test_network_ids_are_stable_across_processes_and_ignore_the_scale():
    net = roadmap.build_model("separate_downsampling").config
    here = network_id(net)
    code = "import roadmap; from roadmap.nets.identity import network_id; " \
           "print(network_id(roadmap.build_model('separate_downsampling').config))"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert there.stdout.strip() == here and here.startswith("net-") and len(here) == 14
    import dataclasses
    assert network_id(dataclasses.replace(net, width_multiplier=0.125, num_classes=10)) == here
    assert network_id(dataclasses.replace(net, kernel_size=5)) != here
    assert network_id(switches(net)) == here  # from a plain mapping too (what the config resolver passes)


def fake_population(root, n=120, planted=3.0):
    """Summaries of a population as explorations write them: block=inverted adds `planted` points, the rest is
    noise; the endpoint's network among them with 3 seeds; the roadmap's endpoint (3 seeds); the random population's
    study with its trained networks and one rejected draw."""
    from roadmap.explore.space import encode
    from roadmap.explore.study import journal_storage

    rng = random.Random(1)
    folder = root / "embedded" / "convnext_t" / "explore"
    folder.mkdir(parents=True)
    study = optuna.create_study(study_name="random", storage=journal_storage(folder / "random.journal"),
                                direction="maximize")
    dist = {k: optuna.distributions.CategoricalDistribution(["a", "b", "c", "d", "e"]) for k in ("x",)}
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params={"x": "a"},
                                              distributions=dist, user_attrs={"outcome": "invalid"}))
    base = dict(switches(roadmap.build_model("separate_downsampling").config))
    ids = {network_id(base)}
    for seed in range(3):  # `+explore=net` with the endpoint's switches
        d = folder / network_id(base) / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({
            "step": network_id(base), "seed": seed, "roadmap": "convnext_t", "scale": "embedded",
            "ablation": "explore", "explore": {"sampler": "net", "budget": None}, "dataset": "fashion_mnist",
            "status": "done", "final_top1": 85 + planted + seed * 0.1, "gmacs": 0.0017, "params": 478_678,
            "switches": base}))
    while len(ids) < n:
        values = dict(base, block=rng.choice(["bottleneck", "inverted"]), norm=rng.choice(["batch", "layer"]),
                      kernel_size=rng.choice([3, 5, 7, 9, 11]), activation=rng.choice(["relu", "gelu"]),
                      width=rng.choice([64, 96]), stem=rng.choice(["resnet", "patchify", "deep"]))
        nid = network_id(values)
        if nid in ids:
            continue
        ids.add(nid)
        gm = 0.001 + 0.0005 * (values["width"] == 96) + rng.uniform(0, 1e-4)
        d = folder / nid / "seed0"
        d.mkdir(parents=True, exist_ok=True)
        top1 = 85 + planted * (values["block"] == "inverted") + rng.gauss(0, 0.4)
        (d / "summary.json").write_text(json.dumps({
            "step": nid, "seed": 0, "roadmap": "convnext_t", "scale": "embedded", "ablation": "explore",
            "explore": {"sampler": "random", "budget": None}, "dataset": "fashion_mnist", "status": "done",
            "final_top1": top1, "gmacs": gm, "params": 400_000, "switches": values}))
        drawn = {k: encode(values[k]) for k in SWITCHES}
        study.add_trial(optuna.trial.create_trial(
            value=top1, params=drawn, user_attrs={"outcome": "trained", "network": nid},
            distributions=_space_distributions()))
    for seed in range(3):
        d = root / "embedded" / "convnext_t" / "separate_downsampling" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({
            "step": "separate_downsampling", "parent": "layer_norm", "order": 16, "seed": seed, "roadmap": "convnext_t",
            "scale": "embedded", "dataset": "fashion_mnist", "status": "done", "final_top1": 86.0 + seed * 0.1,
            "gmacs": 0.0017, "params": 478_678, "switches": base, "paper_top1": 81.97}))


def _space_distributions():
    from omegaconf import OmegaConf

    from roadmap.explore.space import encode

    space = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "explore_space.yaml").explore.space)
    return {k: optuna.distributions.CategoricalDistribution([encode(v) for v in vals]) for k, vals in space.items()}


def test_the_report_recovers_a_planted_switch_effect(tmp_path):
    fake_population(tmp_path / "runs")
    written = report.report(tmp_path / "runs" / "embedded" / "convnext_t", tmp_path / "out")
    names = {p.name for p in written}
    assert {"explore.png", "explore.pdf", "roadmap.png", "results.md"} <= names
    assert (tmp_path / "out" / "explore.png").stat().st_size > 20_000
    md = (tmp_path / "out" / "results.md").read_text()
    section = md[md.index("design-space exploration"):]
    assert "random: 119 networks from 120 draws (1 invalid, 0 repaired, 0 over the complexity budget, 0 drawn " \
           "again); net: 1 networks trained (3 finished runs)." in section
    # Optuna's importances beside the effects: the planted switch first
    importances = section[section.index("### Switch importances (Optuna's PED-ANOVA"):]
    table = table_rows(importances, "switch")
    assert table[0]["switch"] == "block" and float(table[0]["importance"]) > 0.3 and len(table) == 6
    assert importances.split("\n\n")[1].splitlines()[0].startswith("| switch ")  # the table right under the title
    assert {"explore_edf.png", "explore_history.png"} <= names
    # optuna's plots set matplotlib's ggplot style globally: the report's later figures keep the default look
    assert __import__("matplotlib").rcParams["axes.facecolor"] == "white"
    assert "120 networks trained in all" in section
    row = next(r for r in table_rows(section[section.index("### Main effects"):], "switch") if r["switch"] == "block")
    effect = float(row["effect"])
    low, high = (float(x) for x in row["CI"].strip("[]").split(","))
    assert abs(abs(effect) - 3.0) < 0.3 and low <= effect <= high and (low > 0 or high < 0)
    assert row["verdict"] in ("better", "worse")
    # the roadmap's choices: ConvNeXt uses inverted blocks (agrees) and layer norm (unresolved: no planted effect)
    agree = next(r for r in table_rows(section[section.index("### Roadmap's choices"):], "switch")
                 if [r["switch"], r["roadmap"]] == ["block", "inverted"])
    assert agree["verdict"].endswith("agrees")
    # the best against the endpoint's network trained like the population (not the roadmap's longer runs)
    endpoint = next(r for r in table_rows(section, "network") if r["network"] == "separate_downsampling's network")
    assert [endpoint["GMACs"], endpoint["seeds"], endpoint["top-1"]] == ["0.0017", "3", "88.10"]
    best = section[section.index("### The best network"):section.index("\n## ", section.index("### The best"))]
    assert "86.10" not in best and "resnet50_classic's network" not in best  # the baseline: no run at all
    assert "Rank correlation: not defined over 1 trained step(s)" in md
    commands = [line.strip() for line in best.splitlines() if "+explore=net" in line]
    assert len(commands) == 2 and all(c.startswith("python run.py -m +explore=net ") for c in commands)
    assert commands[1].endswith(" seed=0,1,2")  # the endpoint's switches, read back as Hydra reads them:
    parse = OverridesParser.create().parse_override
    base = dict(switches(roadmap.build_model("separate_downsampling").config))
    assert {o.split("=")[0].removeprefix("model."): parse(o).value() for o in commands[1].split()[4:-1]} == base


def test_search_is_tpe_within_the_endpoints_budget_and_gp_its_twin():
    from hydra import compose, initialize_config_dir

    from roadmap.config import register, step_model_config
    from roadmap.explore.space import budget_gmacs
    from roadmap.nets.model import RoadmapNet, gmacs

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", ["+explore=search"], return_hydra_config=True)
        gp = compose("config", ["+explore=gp"], return_hydra_config=True)
        budget = budget_gmacs(cfg)
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.roadmap_explore.ExploreSweeper"
    assert (cfg.explore.sampler, cfg.explore.samples, cfg.explore.name) == ("tpe", 48, "search")
    assert (gp.explore.sampler, gp.explore.name, gp.explore.budget) == ("gp", "gp", "endpoint")
    assert gp.hydra.sweeper._target_ == cfg.hydra.sweeper._target_ and set(gp.explore.space) == set(SWITCHES)
    assert cfg.explore.budget == "endpoint" and cfg.train.epochs == 1 and cfg.run_dir.startswith("runs/embedded/")
    import dataclasses
    end = dataclasses.replace(step_model_config("separate_downsampling", num_classes=10), width_multiplier=0.125)
    assert budget == pytest.approx(gmacs(RoadmapNet(end), 32))


def test_an_exploration_refuses_a_swept_seed_in_one_line(tmp_path, capsys):
    code, _, err = multirun_here("+explore=random", "seed=0,1", *TINY, runs_root=tmp_path, capsys=capsys)
    assert code == 2 and err.strip().splitlines()[-1] == (
        "error: seed=0,1: an exploration trains every network once, with one seed; more seeds of a network: "
        "python run.py -m +explore=net <its switches> seed=0,1,2")
    assert not (tmp_path / "embedded").exists()


def test_a_population_member_whose_summary_lacks_a_switch_gmacs_or_sampler_is_left_out(tmp_path, capsys):
    """Damaged population summaries: a switch missing (a KeyError), GMACs that are no number (the analysis'
    ValueError), a sampler that is no text (a TypeError sorting the explorations) were tracebacks that lost the
    whole report; a summary whose explore is no mapping is no run summary."""
    fake_population(tmp_path / "runs")
    runs = sorted((tmp_path / "runs" / "embedded" / "convnext_t" / "explore").glob("net-*/seed0"))[:4]
    damage = [lambda b: {**b, "switches": {k: v for k, v in b["switches"].items() if k != "stem"}},
              lambda b: {**b, "gmacs": "big"}, lambda b: {**b, "explore": {"sampler": 5}},
              lambda b: {**b, "explore": "random"}]
    for run, change in zip(runs, damage):
        (run / "summary.json").write_text(json.dumps(change(json.loads((run / "summary.json").read_text()))))
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"skipping {runs[3]}/summary.json: unreadable summary (not a run summary: its explore is not a " \
           f"mapping)" in err
    assert f"left out of the population, as their summaries do not give every switch, GMACs and top-1: {runs[0]}, " \
           f"{runs[1]}\n" in err
    md = (tmp_path / "out" / "results.md").read_text()
    assert "; 5: 1 networks trained (1 finished runs); net: " in md and "### Main effects" in md
