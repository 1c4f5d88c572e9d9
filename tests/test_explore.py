"""Design-space exploration: the space and its sampler, stable ids, rejection before training, the analysis of a
population in the report, and a small exploration end to end through run.py."""

import json
import random
import subprocess
import sys

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override
from omegaconf import OmegaConf

import roadmap
from roadmap import report
from roadmap.config import CONF_DIR
from roadmap.explore import SWITCHES, network_id, switches
from roadmap.model import ConfigError, ModelConfig

from helpers import ROOT, TINY, run, summary


def space():
    """The Optuna distributions of conf/explore_space.yaml, parsed as the Optuna sweeper parses them."""
    params = OmegaConf.load(CONF_DIR / "explore_space.yaml").hydra.sweeper.params
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return {o.get_key_element().removeprefix("model."): create_optuna_distribution_from_override(o) for o in parsed}


def draw(n, seed=0):
    """n networks as the random sampler draws them: (switch values as the job receives them, valid or not)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    dist, out = space(), []
    for _ in range(n):
        trial = study.ask()
        values = {k: trial._suggest(k, d) for k, d in dist.items()}
        values = {k: OverridesParser.create().parse_override(f"x={v}").value() for k, v in values.items()}
        try:
            ModelConfig.from_dict(values)
            out.append((values, True))
        except ConfigError:
            out.append((values, False))
        study.tell(trial, 0.0)
    return out


def test_the_space_is_every_switch_and_the_sampler_covers_it():
    dist = space()
    assert set(dist) == set(SWITCHES)
    assert set(dist["stem"].choices) == {"resnet", "patchify", "deep"} and len(dist["kernel_size"].choices) == 5
    drawn = draw(400)
    valid = [v for v, ok in drawn if ok]
    assert 0.3 < len(valid) / len(drawn) < 0.8  # invalid combinations are drawn, and only they are rejected
    for values, ok in drawn:
        if not ok:
            with pytest.raises(ConfigError):
                ModelConfig.from_dict(values)
    for name in SWITCHES:  # every value of every switch among the valid networks
        seen = {json.dumps(v[name]) for v in valid}
        expected = {json.dumps(OverridesParser.create().parse_override(f"x={c}").value()) for c in dist[name].choices}
        assert seen == expected, name


def test_network_ids_are_stable_across_processes_and_ignore_the_scale():
    net = roadmap.build_model("separate_downsampling").config
    here = network_id(net)
    code = "import roadmap; from roadmap.explore import network_id; " \
           "print(network_id(roadmap.build_model('separate_downsampling').config))"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert there.stdout.strip() == here and here.startswith("net-") and len(here) == 14
    import dataclasses
    assert network_id(dataclasses.replace(net, width_multiplier=0.125, num_classes=10)) == here
    assert network_id(dataclasses.replace(net, kernel_size=5)) != here
    assert network_id(switches(net)) == here  # from a plain mapping too (what the config resolver passes)


def fake_population(root, n=120, planted=3.0):
    """Summaries of a population as explorations write them: block=inverted adds `planted` points, the rest is
    noise; the endpoint's network among them with 3 seeds; the roadmap's endpoint (3 seeds) and a rejected draw."""
    rng = random.Random(1)
    folder = root / "embedded" / "convnext_t" / "explore"
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
    (folder / "rejected.jsonl").write_text(json.dumps({"id": "net-x", "switches": {}, "reason": "model.x",
                                                       "sampler": "random"}) + "\n")
    for seed in range(3):
        d = root / "embedded" / "convnext_t" / "separate_downsampling" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({
            "step": "separate_downsampling", "parent": "layer_norm", "order": 16, "seed": seed, "roadmap": "convnext_t",
            "scale": "embedded", "dataset": "fashion_mnist", "status": "done", "final_top1": 86.0 + seed * 0.1,
            "gmacs": 0.0017, "params": 478_678, "switches": base, "paper_top1": 81.97}))


def test_the_report_recovers_a_planted_switch_effect(tmp_path):
    fake_population(tmp_path / "runs")
    written = report.report(tmp_path / "runs" / "embedded" / "convnext_t", tmp_path / "out")
    names = {p.name for p in written}
    assert {"explore.png", "explore.pdf", "roadmap.png", "results.md"} <= names
    assert (tmp_path / "out" / "explore.png").stat().st_size > 20_000
    md = (tmp_path / "out" / "results.md").read_text()
    section = md[md.index("design-space exploration"):]
    assert "random: 119 networks trained (119 finished runs), 1 rejected before training (1 invalid combinations, 0 " \
           "over the complexity budget); net: 1 networks trained (3 finished runs), 0 rejected" in section
    assert "120 networks trained in all" in section
    row = next(line for line in section.splitlines() if line.startswith("| block |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    effect = float(cells[3])
    low, high = (float(x) for x in cells[4].strip("[]").split(","))
    assert abs(abs(effect) - 3.0) < 0.3 and low <= effect <= high and (low > 0 or high < 0)
    assert cells[7] in ("better", "worse")
    # the roadmap's choices: ConvNeXt uses inverted blocks (agrees) and layer norm (unresolved: no planted effect)
    agree = next(line for line in section.splitlines() if line.startswith("| block | inverted |"))
    assert agree.rstrip(" |").endswith("agrees")
    # the best against the endpoint's network trained like the population (not the roadmap's longer runs)
    assert "| separate_downsampling's network | 0.0017 | 3 | 88.10 |" in section
    best = section[section.index("### The best network"):section.index("\n## ", section.index("### The best"))]
    assert "86.10" not in best and "resnet50_classic's network" not in best  # the baseline: no run at all
    assert "Rank correlation: not defined over 1 trained step(s)" in md
    commands = [line.strip() for line in best.splitlines() if "+explore=net" in line]
    assert len(commands) == 2 and all(c.startswith("python run.py -m +explore=net ") for c in commands)
    assert commands[1].endswith(" seed=0,1,2")  # the endpoint's switches, read back as Hydra reads them:
    parse = OverridesParser.create().parse_override
    base = dict(switches(roadmap.build_model("separate_downsampling").config))
    assert {o.split("=")[0].removeprefix("model."): parse(o).value() for o in commands[1].split()[4:-1]} == base


def test_a_small_exploration_end_to_end(tmp_path):
    p = run("-m", "+explore=random", "explore.samples=3", "explore.sampler_seed=0", *TINY, "train.epochs=1",
            runs_root=tmp_path)
    folder = tmp_path / "embedded" / "convnext_t" / "explore"
    trained = sorted(d.name for d in folder.iterdir() if d.is_dir())
    rejected = (folder / "rejected.jsonl").read_text().splitlines() if (folder / "rejected.jsonl").exists() else []
    assert len(trained) + len(rejected) == 3 and trained, p.stdout
    s = summary(folder / trained[0] / "seed0")
    assert s["status"] == "done" and s["kind"] == "explore" and s["explore"]["sampler"] == "random"
    assert s["step"] == network_id(s["switches"]) and set(s["switches"]) == set(SWITCHES)
    assert f"3/3 drawn: {len(trained)} trained, {len(rejected)} rejected" in p.stdout
    for line in rejected:
        assert json.loads(line)["reason"]
    md = report.report(tmp_path / "embedded" / "convnext_t", tmp_path / "out")[1].read_text()
    assert f"random: {len(trained)} networks trained ({len(trained)} finished runs), {len(rejected)} rejected" in md


def test_search_is_tpe_within_the_endpoints_budget():
    from hydra import compose, initialize_config_dir

    from roadmap.config import register, step_model_config
    from roadmap.explore import budget_gmacs
    from roadmap.model import RoadmapNet, gmacs

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", ["+explore=search"], return_hydra_config=True)
        budget = budget_gmacs(cfg)
    assert cfg.hydra.sweeper.sampler._target_.endswith("TPESampler") and cfg.hydra.sweeper.n_trials == 48
    assert cfg.explore.budget == "endpoint" and cfg.train.epochs == 1 and cfg.run_dir.startswith("runs/embedded/")
    import dataclasses
    end = dataclasses.replace(step_model_config("separate_downsampling", num_classes=10), width_multiplier=0.125)
    assert budget == pytest.approx(gmacs(RoadmapNet(end), 32))
