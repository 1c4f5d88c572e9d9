"""An exploration's Optuna study (roadmap.explore.study): draws admitted before training, the budget as a constraint, the
random sampler uniform over valid networks, a killed worker's trial resumed, two processes on one study."""

import dataclasses
import itertools
import json
import subprocess
import sys
import textwrap

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState
from scipy import stats

from roadmap.report import build as report
from roadmap.config import CONF_DIR
from roadmap.errors import ConfigError
from roadmap.explore.space import SWITCHES, repair
from roadmap.nets.identity import network_id
from roadmap.nets.model import ModelConfig
from roadmap.explore.study import Exploration, counts

from helpers import ROOT, TINY, metrics, multirun_here

SPACE = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "explore_space.yaml").explore.space)
BASE = {**dataclasses.asdict(ModelConfig(num_classes=10, in_channels=1, width_multiplier=0.125)),
        "depths": [3, 4, 6, 3]}
SMALL = {"kernel_size": [3, 5, 7, 9, 11], "conv_position": ["middle", "first"], "activations": ["all", "one"],
         "norms": ["all", "one"], "zero_init_residual": [False, True]}  # 80 combinations, 45 valid


def exploration(folder, sampler="random", samples=5, space=SMALL, budget=None, **kw):
    return Exploration(folder, name=kw.pop("name", sampler), sampler=sampler, samples=samples, space=space, base=BASE,
                       budget=budget, resolution=32, seed=kw.pop("seed", 0), startup_trials=kw.pop("startup", 8))


def objective(sw):
    return 80 + 3 * (sw["block"] == "inverted") + 2 * (sw["norm"] == "batch") + 0.3 * sw["kernel_size"]


def finish_all(ex):
    while (d := ex.next()) is not None:
        ex.finish(d, objective(d.switches))
    return ex.study.get_trials(deepcopy=False)


def test_the_space_is_every_switch_with_the_roadmaps_values():
    assert set(SPACE) == set(SWITCHES)
    assert SPACE["stem"] == ["resnet", "patchify", "deep"] and SPACE["kernel_size"] == [3, 5, 7, 9, 11]
    assert SPACE["depths"] == [[3, 4, 6, 3], [3, 3, 9, 3]] and SPACE["layer_scale"] == [None, 1e-6]
    with pytest.raises(ConfigError, match=r"explore.space.kernel: not a switch of the design space"):
        exploration("unused", space={"kernel": [3]})


def test_repair_maps_every_draw_to_the_nearest_valid_network():
    names = ["conv_position", "activations", "norms", "zero_init_residual", "stride_conv", "norm", "downsampling"]
    choices = [SPACE[n] for n in names]
    broken = 0
    for combo in itertools.product(*choices):
        drawn = {**BASE, **dict(zip(names, combo))}
        fixed = repair(drawn)
        ModelConfig.from_dict(fixed)  # always valid
        changed = {k for k in drawn if drawn[k] != fixed[k]}
        try:
            ModelConfig.from_dict(drawn)
            assert not changed  # a valid network is kept as drawn
        except ConfigError:
            broken += 1
            assert changed and changed <= {"activations", "zero_init_residual", "stride_conv"}
    assert 0 < broken == sum(1 for combo in itertools.product(*choices) if not _valid(dict(zip(names, combo))))


def _valid(values):
    try:
        ModelConfig.from_dict({**BASE, **values})
        return True
    except ConfigError:
        return False


def test_random_draws_are_uniform_over_the_valid_networks(tmp_path):
    ex = exploration(tmp_path, samples=45)
    trials = finish_all(ex)
    valid = [t for t in trials if t.user_attrs["outcome"] in ("trained", "redrawn")]
    per_net = {}
    for t in valid:
        per_net[t.user_attrs["network"]] = per_net.get(t.user_attrs["network"], 0) + 1
    assert len(per_net) == 45 and counts(trials)["trained"] == 45  # every valid network once, then the study ends
    assert stats.chisquare(list(per_net.values())).pvalue > 1e-3  # the draws do not favour any valid network
    invalid = counts(trials)["invalid"]  # rejected, not repaired: 35 of the 80 combinations are invalid
    assert stats.binomtest(invalid, len(trials), 35 / 80).pvalue > 1e-3
    for t in trials:
        if t.user_attrs["outcome"] == "invalid":
            assert t.state == TrialState.PRUNED and "needs model." in t.user_attrs["reason"]
        if t.user_attrs["outcome"] == "redrawn":  # told the value of its first trial, nothing trained again
            assert t.value == trials[t.user_attrs["first"]].value


def test_the_budget_is_a_constraint_the_gp_sampler_learns(tmp_path):
    budget = 0.0017  # about ConvNeXt-T's cost at the embedded scale: most valid networks of the space cost more

    def over_share(trials, after=0):  # of the valid draws after the first `after` trained networks
        n_trained, seen = 0, []
        for t in trials:
            if n_trained >= after and t.user_attrs["outcome"] in ("trained", "over_budget", "redrawn"):
                seen.append(t.user_attrs["outcome"] == "over_budget")
            n_trained += t.user_attrs["outcome"] == "trained"
        return sum(seen) / len(seen)

    uniform = finish_all(exploration(tmp_path / "random", samples=14, space=SPACE, budget=budget))
    trials = finish_all(exploration(tmp_path / "gp", sampler="gp", samples=14, space=SPACE, budget=budget, startup=5))
    assert [t.user_attrs["sampler"] for t in trials].count("random") == next(  # random draws until 5 are trained
        i for i, t in enumerate(trials) if t.user_attrs["sampler"] == "gp")
    trained = [t for t in trials if t.user_attrs["outcome"] == "trained"]
    assert len(trained) == 14 and all(t.user_attrs["gmacs"] <= budget for t in trained)  # none trained over it
    over = [t for t in trials if t.user_attrs["outcome"] == "over_budget"]
    assert over and all(t.system_attrs["constraints:gmacs"] > 0 for t in over)  # Optuna's constraint, not -inf
    assert all(t.system_attrs["constraints:gmacs"] <= 0 for t in trained)
    # once its startup draws are done, the GP proposes far fewer networks over the budget than uniform draws hit
    assert over_share(uniform) > 0.4 and over_share(trials, after=5) < over_share(uniform) / 2
    repaired = [t for t in trained if t.user_attrs["repaired"]]  # invalid draws repaired, none rejected
    assert counts(trials)["invalid"] == 0 and all(_valid(t.user_attrs["switches"]) for t in repaired)


def test_tpe_sees_over_budget_draws_as_infeasible(tmp_path):
    budget = 0.0017
    trials = finish_all(exploration(tmp_path, sampler="tpe", samples=12, space=SPACE, budget=budget, startup=4))
    over = [t for t in trials if t.user_attrs["outcome"] == "over_budget"]
    assert over and all(t.state == TrialState.PRUNED and t.system_attrs["constraints:gmacs"] > 0 for t in over)
    assert len({t.user_attrs["network"] for t in trials if t.user_attrs["outcome"] == "trained"}) == 12


def test_a_rerun_continues_the_study_and_draws_what_a_straight_run_draws(tmp_path):
    straight = [t.user_attrs.get("network") for t in finish_all(exploration(tmp_path / "a", samples=6))]
    first = exploration(tmp_path / "b", samples=3)
    finish_all(first)
    first.close()
    again = exploration(tmp_path / "b", samples=6)  # the same command with more samples
    assert [t.user_attrs.get("network") for t in finish_all(again)] == straight


def test_a_trial_left_by_a_dead_worker_is_resumed_and_nothing_is_trained_twice(tmp_path):
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from test_study import exploration, objective
        ex = exploration({str(tmp_path)!r}, samples=4)
        d = ex.next(); ex.finish(d, objective(d.switches))
        d = ex.next(); print(d.number, d.network, flush=True)
        os._exit(9)  # killed while training its second network
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    number, network = p.stdout.split()
    ex = exploration(tmp_path, samples=4)
    resumed = ex.next()
    assert (resumed.number, resumed.network) == (int(number), network)
    ex.finish(resumed, objective(resumed.switches))
    trials = finish_all(ex)
    trained = [t for t in trials if t.user_attrs["outcome"] == "trained"]
    assert len(trained) == 4 and len({t.user_attrs["network"] for t in trained}) == 4
    assert all(t.state == TrialState.COMPLETE for t in trials if t.user_attrs["outcome"] != "invalid")
    assert not list((tmp_path / "random.workers").iterdir()) or all(
        f.name.startswith(ex.worker) for f in (tmp_path / "random.workers").iterdir())


def test_a_study_refuses_another_budget_in_one_line(tmp_path):
    exploration(tmp_path, budget=0.002).close()
    with pytest.raises(ConfigError, match=r"random.journal holds a study drawn with another budget_gmacs "
                                          r"\(budget_gmacs: 0.002 -> 0.003\); explore.name=<new name> starts a new "
                                          r"one, deleting the journal starts over$"):
        exploration(tmp_path, budget=0.003)


def test_two_processes_share_one_study_and_train_disjoint_networks(tmp_path, capsys):
    cmd = ["-m", "+explore=random", "explore.samples=6", *TINY, "train.epochs=1"]
    env = {"OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(ROOT / "run.py"), *cmd, f"runs_root={tmp_path}"], cwd=ROOT,
                              env={**__import__("os").environ, "WANDB_MODE": "disabled", **env},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    folder = tmp_path / "embedded" / "convnext_t" / "explore"
    study = optuna.load_study(study_name="random", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "random.journal"))))
    trained = [t for t in study.trials if t.user_attrs.get("outcome") == "trained"]
    assert len(trained) == 6 and all(t.state == TrialState.COMPLETE for t in trained)
    nets = [t.user_attrs["network"] for t in trained]
    assert len(set(nets)) == 6 and sorted(nets) == sorted(d.name for d in folder.glob("net-*"))
    assert len({t.user_attrs["worker"] for t in trained}) == 2, outs  # both trained some
    for net in nets:  # each trained once: one epoch line, one summary with the trial's value
        assert len(metrics(folder / net / "seed0")) == 1
        value = next(t.value for t in trained if t.user_attrs["network"] == net)
        assert json.loads((folder / net / "seed0" / "summary.json").read_text())["final_top1"] == value
        assert net == network_id(json.loads((folder / net / "seed0" / "summary.json").read_text())["switches"])
    c = counts(study.trials)
    assert all("/6 networks" in o for o in outs) and c["invalid"] + c["over_budget"] == len(study.trials) - 6
    code, rerun, _ = multirun_here(*cmd[1:], runs_root=tmp_path, capsys=capsys)  # finished: nothing more to draw
    assert code == 0 and rerun.startswith("[explore random] 6/6 networks: 6 trained, 0 failed; ") and \
        "Launching" not in rerun
    for t in trained:  # the summaries say which exploration drew them
        s = json.loads((folder / t.user_attrs["network"] / "seed0" / "summary.json").read_text())
        assert (s["kind"], s["explore"]["sampler"], set(s["switches"])) == ("explore", "random", set(SWITCHES))
    md = report.report(tmp_path / "embedded" / "convnext_t", tmp_path / "out")[1].read_text()
    assert (f"random: 6 networks from {len(study.trials)} draws ({c['invalid']} invalid, 0 repaired, "
            f"{c['over_budget']} over the complexity budget, 0 drawn again). 6 networks trained in all") in md


# -- issue 30: a study refuses what changes a score; a damaged journal is one line ---------------------------------

EXPLORE = ["+explore=random", "explore.samples=1", *TINY, "train.epochs=1"]


def test_a_study_names_the_switches_of_another_space(tmp_path):
    exploration(tmp_path).close()
    with pytest.raises(ConfigError, match=r"random.journal holds a study drawn with another space "
                                          r"\(space.kernel_size: \[3, 5, 7, 9, 11\] -> \[3, 5\]\); explore.name="):
        exploration(tmp_path, space={**SMALL, "kernel_size": [3, 5]})


def test_a_study_refuses_anything_that_changes_a_score(tmp_path, capsys):
    """The issue's case: networks of the modern recipe, then a rerun with the classic recipe and 3 steps per epoch,
    which trained and ranked both recipes' networks in one study."""
    from roadmap.config import compose

    assert multirun_here(*EXPLORE, runs_root=tmp_path, capsys=capsys)[0] == 0
    folder = tmp_path / "embedded" / "convnext_t" / "explore"
    journal = (folder / "random.journal").read_bytes()
    code, out, err = multirun_here(*EXPLORE, "explore.samples=2", "recipe=classic", "train.max_steps_per_epoch=3",
                                   runs_root=tmp_path, capsys=capsys)
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"error: {folder}/random.journal holds a study drawn with another recipe and train (recipe.name: modern -> "
        f"classic; train.max_steps_per_epoch: 60 -> 3); explore.name=<new name> starts a new one, deleting the "
        f"journal starts over")
    assert (folder / "random.journal").read_bytes() == journal and len(list(folder.glob("net-*"))) == 1

    def refused(*overrides):
        cfg = compose([*EXPLORE, f"runs_root={tmp_path}", *overrides])
        with pytest.raises(ConfigError) as e:
            Exploration.from_config(cfg)
        return str(e.value).split("drawn with ")[1].split("; explore.name")[0]

    assert refused("seed=1") == "another seed (seed: 0 -> 1)"
    assert refused("data.train_size=128") == "another data (data.train_size: 256 -> 128)"
    assert refused("train.epochs=2") == "another train (train.epochs: 1 -> 2)"
    assert refused("train.batch_size=32") == "another train (train.batch_size: 64 -> 32)"
    assert refused("recipe.lr=0.001") == "another recipe (recipe.lr: 0.004 -> 0.001)"
    assert refused("data.resolution=64").startswith("another budget_gmacs, resolution and data (budget_gmacs: ")
    assert refused("model.width_multiplier=0.25").endswith("model.width_multiplier: 0.125 -> 0.25)")
    same = Exploration.from_config(compose([*EXPLORE, f"runs_root={tmp_path}", "data.root=/elsewhere",
                                            "train.workers=2", "train.device=cpu"]))  # where and how, not what
    same.close()


def test_a_study_from_before_the_score_settings_takes_the_reruns(tmp_path):
    exploration(tmp_path).close()  # space, budget and resolution only, as studies were stored before
    ex = exploration(tmp_path, name="random")
    ex.scored = {"seed": 0}
    ex._check_settings()
    assert ex.study.user_attrs["settings"]["seed"] == 0
    ex.close()


@pytest.mark.parametrize("damage, line, what", [
    ("garbage", 2, "is not an entry of an Optuna journal"),
    ("truncated", None, "is cut short"),
    ("binary", 1, "is not an entry of an Optuna journal")])
def test_a_damaged_journal_is_one_line_naming_it_and_never_appended_to(tmp_path, capsys, damage, line, what):
    exploration(tmp_path / "explore").close()
    path = tmp_path / "explore" / "random.journal"
    lines = path.read_bytes().split(b"\n")
    path.write_bytes({"garbage": lambda: b"\n".join([lines[0], b"garbage", *lines[1:]]),
                      "truncated": lambda: b"\n".join(lines)[:-15],
                      "binary": lambda: bytes(range(256)) * 4}[damage]())
    line = line or len(lines) - 1
    damaged = path.read_bytes()
    with pytest.raises(ConfigError) as e:
        exploration(tmp_path / "explore")
    assert str(e.value) == (f"{path}: line {line} {what} (the file is damaged); move it away to start the exploration "
                            f"over, or explore.name=<new name> for a new one")
    assert path.read_bytes() == damaged
    with pytest.warns(UserWarning, match=f"skipping {path}: line {line} {what}"):
        from roadmap.explore.study import studies

        assert studies(tmp_path / "explore") == {}


def test_a_damaged_journal_through_the_command_line(tmp_path, capsys):
    folder = tmp_path / "embedded" / "convnext_t" / "explore"
    folder.mkdir(parents=True)
    (folder / "random.journal").write_bytes(b'{"op_code":0,"worker_id":"w","study_name":"random","directions":[1]}\n'
                                            b'{"op_code":2,"worker_id')
    code, out, err = multirun_here(*EXPLORE, runs_root=tmp_path, capsys=capsys)
    assert code == 2 and err.strip().splitlines() == [
        f"error: {folder}/random.journal: line 2 is cut short (the file is damaged); move it away to start the "
        f"exploration over, or explore.name=<new name> for a new one"], err
    assert "Traceback" not in out + err and not list(folder.glob("net-*"))


def test_an_exploration_name_journal_folder_or_sweeper_setting_that_cannot_work_is_one_line(tmp_path, capsys):
    """Found as a hostile user: explore.name=a/b (FileNotFoundError), explore.name=.. (a study beside the explore
    folder), a folder where the journal goes (IsADirectoryError), hydra.sweeper.n_jobs=0 (a ValueError traceback)."""
    for name in ("a/b", ".."):
        code, _, err = multirun_here(*EXPLORE, f"explore.name={name}", runs_root=tmp_path, capsys=capsys)
        assert code == 2 and err.strip().splitlines()[-1] == (
            f"error: explore.name={name!r}: must be a file name (letters, digits, _, - and ., not starting with .)")
    code, _, err = multirun_here(*EXPLORE, "hydra.sweeper.n_jobs=0", runs_root=tmp_path, capsys=capsys)
    assert code == 2 and err.strip().splitlines()[-1] == "error: hydra.sweeper.n_jobs=0: must be an integer >= 1"
    assert not list(tmp_path.rglob("*.journal"))
    journal = tmp_path / "embedded" / "convnext_t" / "explore" / "random.journal"
    journal.mkdir(parents=True)
    code, _, err = multirun_here(*EXPLORE, runs_root=tmp_path, capsys=capsys)
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"error: {journal}: cannot be read as a journal (Is a directory); move it away to start the exploration "
        f"over, or explore.name=<new name> for a new one")


@pytest.mark.parametrize("name, make, what", [("random.workers", "touch", "folder"), ("random.lock", "mkdir", "file")])
def test_a_file_where_the_explorations_folder_goes_is_one_line(tmp_path, capsys, name, make, what):
    """A file at <name>.workers was a FileExistsError traceback (a folder at <name>.lock an IsADirectoryError)."""
    path = tmp_path / "embedded" / "convnext_t" / "explore" / name
    path.parent.mkdir(parents=True)
    path.touch() if make == "touch" else path.mkdir()
    code, _, err = multirun_here(*EXPLORE, runs_root=tmp_path, capsys=capsys)
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"error: {path}: the exploration keeps a {what} here; move it away (it holds no results)")
    assert not list(tmp_path.rglob("*.journal"))
