"""A user's own steps and roadmaps (`python run.py --config-dir my_conf ...`) are checked as the shipped ones are, and
every command line, single run or sweep, ends in one line and exit 2 for bad input, with nothing written."""

import subprocess
import sys

import hydra
import pytest
from hydra.core.global_hydra import GlobalHydra

from roadmap.config import CONF_DIR

from helpers import ROOT, TINY, run

STEP = "# @package _global_\ndefaults:\n  - {parent}\n  - _self_\n{step}model:\n  kernel_size: 3\n"


def command_here(*args, runs_root, capsys, monkeypatch):
    """`python run.py <args> runs_root=...` in this process: run.py's `command` (the precheck, Hydra's command line
    with its sweeps through the basic launcher, a sweep's exit code). Returns (exit code, stdout, stderr)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import run as entry

    argv = [*args, f"runs_root={runs_root}"]
    monkeypatch.setattr(sys, "argv", ["run.py", *argv])  # Hydra reads its command line from sys.argv
    monkeypatch.setattr(entry, "main", hydra.main(version_base="1.3", config_path=str(ROOT / "conf"),
                                                  config_name="config")(entry.main.__wrapped__))
    try:
        code = entry.command(argv)
    except SystemExit as e:
        code = e.code
    finally:
        GlobalHydra.instance().clear()
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def here(tmp_path, capsys, monkeypatch):
    """command_here with tmp_path/runs as runs_root."""
    return lambda *args: command_here(*args, runs_root=tmp_path / "runs", capsys=capsys, monkeypatch=monkeypatch)


def refused(result, message: str, runs) -> None:
    """Exit 2, exactly `error: <message>` as the one line on stderr, and no file under runs."""
    code, out, err = result
    assert (code, err) == (2, f"error: {message}\n"), (code, out, err)
    assert not runs.exists() or list(runs.rglob("*")) == []


def write(folder, relative: str, text: str):
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def copied_roadmap(name: str, drop: str | None = None) -> str:
    """conf/roadmap/convnext_t.yaml as a user copies it, renamed to `name` (without its lines containing `drop`)."""
    lines = (CONF_DIR / "roadmap" / "convnext_t.yaml").read_text().splitlines()
    return "\n".join(line.replace("name: convnext_t", f"name: {name}") for line in lines if not drop or drop not in line)


# A. a user's roadmaps and steps --------------------------------------------------------------------------------------

def test_a_copied_roadmap_never_renamed_is_refused_and_writes_nothing(tmp_path, here):
    """Its runs and roadmap.json would go to convnext_t's folder (they overwrote runs/.../convnext_t/roadmap.json)."""
    write(tmp_path / "my_conf", "roadmap/wrongname.yaml", (CONF_DIR / "roadmap" / "convnext_t.yaml").read_text())
    refused(here("--config-dir", str(tmp_path / "my_conf"), "roadmap=wrongname", "+step=resnet50", *TINY),
            "roadmap=wrongname: roadmap.name is 'convnext_t', not its file's name; a roadmap is named by its file "
            "(its runs and roadmap.json go by it): `name: wrongname` in roadmap/wrongname.yaml", tmp_path / "runs")
    refused(here("+step=gelu", "roadmap.name=convnext_b", *TINY),  # the same from the command line
            "roadmap=convnext_t: roadmap.name is 'convnext_b', not its file's name; a roadmap is named by its file "
            "(its runs and roadmap.json go by it): `name: convnext_t` in roadmap/convnext_t.yaml", tmp_path / "runs")


def test_a_users_file_that_a_shipped_one_would_hide_is_refused(tmp_path, here):
    """Hydra reads conf/ first: a user's roadmap/convnext_t.yaml (or any file at one of conf/'s paths) never counts."""
    path = write(tmp_path / "my_conf", "roadmap/convnext_t.yaml", copied_roadmap("convnext_t").replace(
        "title: ", "title: my "))
    refused(here("--config-dir", str(tmp_path / "my_conf"), "+step=resnet50", *TINY),
            f"{path}: conf/roadmap/convnext_t.yaml has this name, and Hydra reads conf/'s first, so yours would not "
            f"count; give yours a name of its own", tmp_path / "runs")


@pytest.mark.parametrize("name, text, message", [
    ("nostep", STEP.format(parent="gelu", step=""),
     "{path}: has no `step:`; a step file names itself (`step: nostep`), or its runs go to another step's folder"),
    ("other", STEP.format(parent="gelu", step="step: gelu\n"),
     "{path}: says step: gelu; a step file names itself (`step: other`), or its runs go to another step's folder"),
    ("nohead", STEP.format(parent="gelu", step="step: nohead\n").replace("# @package _global_\n", ""),
     "{path}: a step file starts with `# @package _global_`, as conf/step/'s do, and sets `step:`, `model:`, ... at "
     "the top level"),
    ("orphan", STEP.format(parent="missing_parent", step="step: orphan\n"),
     "{path}: builds on step missing_parent (its defaults), and there is no step/missing_parent.yaml in conf/ or "
     "{folder}"),
    ("broken", STEP.format(parent="gelu", step="step: broken\n").replace("kernel_size: 3", "kernel_size: [3"),
     "{path}: YAML error at line 8, column 1: expected ',' or ']', but got '<stream end>' (while parsing a flow "
     "sequence at line 7)"),
    ("typo", STEP.format(parent="gelu", step="step: typo\n").replace("model:", "modl:"),
     "{path}: sets 'modl', which is no key of the config; at the top level a file of the _global_ package sets data, "
     "defaults, eval, explore, hydra, kind, logger, model, recipe, reference, roadmap, run_dir, runs_root, scale, "
     "seed, step, step_info, sweep, sweep_name, train"),
    ("twice", STEP.format(parent="gelu", step="step: twice\n") + "model:\n  kernel_size: 5\n",
     "{path}: YAML error at line 8, column 1: found the key 'model' twice (while constructing a mapping at line 2)"),
    ("binary", "\udcff\udcfe", "{path}: not a text file (UTF-8); a config file is YAML"),
    ("nolist", "# @package _global_\ndefaults: 5\nstep: nolist\n",
     "{path}: `defaults:` must be a list of the configs it builds on (`- <step>`, `- _self_`); got 5"),
    ("number", "# @package _global_\ndefaults:\n  - 5\nstep: number\n",
     "{path}: `defaults:` must be a list of the configs it builds on (`- <step>`, `- _self_`); got [5]"),
    ("depths", STEP.format(parent="gelu", step="step: depths\n").replace("kernel_size: 3", "depths: 5"),
     "model.depths=5: must be a non-empty list of positive integers"),
])
def test_a_users_step_file_is_checked_as_the_shipped_ones(name, text, message, tmp_path, here):
    """Without `step:` (or naming another) it trained into another step's folder; a missing parent or a YAML error
    said the step was not one of the roadmap's. A top-level key no config has (a typo: `modl:`) trained as if it were
    not there; a key given twice kept the last; a binary file was a UnicodeDecodeError naming no file."""
    folder = tmp_path / "my_conf"
    path = write(folder, f"step/{name}.yaml", "")
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    refused(here("--config-dir", str(folder), f"+step={name}", *TINY),
            message.replace("{path}", str(path)).replace("{folder}", str(folder)), tmp_path / "runs")


@pytest.mark.parametrize("name", ["my conf ñ", "my,conf]", "it's conf"])
def test_a_config_dir_with_spaces_commas_or_quotes_in_its_path_is_read(name, tmp_path, here):
    """Its path went unquoted into hydra.searchpath: 'LexerNoViableAltException: hydra.searchpath=[...]'."""
    folder = tmp_path / name
    write(folder, "step/mine.yaml", STEP.format(parent="gelu", step="step: mine\n"))
    code, out, err = here("--config-dir", str(folder), "+step=mine", *TINY, "train.epochs=1",
                          "train.max_steps_per_epoch=1", "eval.robustness=false")
    assert code == 0 and (tmp_path / "runs/embedded/convnext_t/mine/seed0/summary.json").exists(), err


def test_a_config_dir_that_is_a_file_says_so(tmp_path, here):
    (tmp_path / "my_conf").write_text("")
    refused(here("--config-dir", str(tmp_path / "my_conf"), "+step=gelu", *TINY),
            f"config dir {tmp_path / 'my_conf'} is a file, not a folder", tmp_path / "runs")


def test_a_users_step_whose_model_is_no_mapping_is_one_line(tmp_path, here):
    """`model: 5` was 'ValueError: Input cfg is not an OmegaConf config object (int)'."""
    folder = tmp_path / "my_conf"
    write(folder, "step/scalar.yaml", STEP.format(parent="gelu", step="step: scalar\n").replace(
        "model:\n  kernel_size: 3", "model: 5"))
    refused(here("--config-dir", str(folder), "+step=scalar", "data=synthetic"),
            "model=5: must be a mapping of the network's fields", tmp_path / "runs")


@pytest.mark.parametrize("info, got", [("step_info=5", "5"), ("++step_info={mine: 5}", "{'mine': 5}")])
def test_step_info_that_is_no_mapping_of_fields_is_one_line(info, got, tmp_path, here):
    """It was an AttributeError traceback ('int' object has no attribute 'get')."""
    folder = tmp_path / "my_conf"
    write(folder, "step/mine.yaml", STEP.format(parent="gelu", step="step: mine\n"))
    refused(here("--config-dir", str(folder), "+step=mine", info, *TINY),
            f"step_info: must map each step to its fields (mine: {{label: ..., parent: ...}}); got {got}",
            tmp_path / "runs")


def test_a_users_steps_that_build_on_each_other_in_a_circle_are_named(tmp_path, here):
    folder = tmp_path / "my_conf"
    first = write(folder, "step/cyc_a.yaml", STEP.format(parent="cyc_b", step="step: cyc_a\n"))
    write(folder, "step/cyc_b.yaml", STEP.format(parent="cyc_a", step="step: cyc_b\n"))
    refused(here("--config-dir", str(folder), "+step=cyc_a", *TINY),
            f"{first}: its defaults go round in a circle: cyc_a -> cyc_b -> cyc_a; a step builds on one before it",
            tmp_path / "runs")


@pytest.mark.parametrize("name, text, message", [
    ("nosr", copied_roadmap("nosr", drop="stage_ratio: {depths"),
     "model.depths reads ${roadmap.stage_ratio.depths}, and roadmap nosr gives no `stage_ratio`: a roadmap gives the "
     "values its steps read; add it to roadmap/nosr.yaml (conf/roadmap/convnext_t.yaml has them)"),
    ("branches", "# @package _global_\nroadmap:\n  name: branches\n  steps:\n    resnet50: {branch: true}\n",
     "roadmap branches: every step is a branch (branch: true); its path needs at least one adopted step"),
    ("empty", "# @package _global_\nroadmap:\n  name: empty\n  title: x\n  steps:\n",
     "roadmap empty: `steps:` must list its steps in order, each `<step>: {<field>: <value>}` (parent, label, "
     "section, branch, top1, top1_std, top5, gmacs); got steps=None"),
    ("nofile", "# @package _global_\nroadmap:\n  name: nofile\n  steps:\n    resnet50: {}\n    gone: {}\n",
     "roadmap nofile: its step gone has no step/gone.yaml in conf/ or {folder}"),
])
def test_a_users_roadmap_is_checked_whole(name, text, message, tmp_path, here):
    """A missing value its steps read was an InterpolationKeyError traceback, only branches an IndexError, no steps
    'got the keys name, steps, title'."""
    folder = tmp_path / "my_conf"
    write(folder, f"roadmap/{name}.yaml", text)
    step = "stage_ratio" if name == "nosr" else "resnet50"
    refused(here("--config-dir", str(folder), f"roadmap={name}", f"+step={step}", *TINY),
            message.replace("{folder}", str(folder)), tmp_path / "runs")


# A. sweeps: the same checks before anything runs, and an exit code that says whether any run finished ------------

NOT_A_STEP = ("step='{}' is not a step of roadmap convnext_t; its steps: resnet50_classic, resnet50, stage_ratio, "
              "patchify_stem, depthwise_conv, widen, inverted_bottleneck, move_up_dwconv, kernel_5, kernel_7, kernel_9, "
              "kernel_11, gelu, fewer_activations, fewer_norms, layer_norm, separate_downsampling")


def test_a_sweeps_roadmaps_and_steps_are_checked_before_it_starts(tmp_path, here):
    """Each value of a comma list, as a run of it would be: Hydra printed 12 to 53 lines for these."""
    runs = tmp_path / "runs"
    refused(here("-m", "roadmap=nope", "+step=gelu", *TINY),
            "roadmap='nope': no roadmap/nope.yaml in conf/ or the config dirs; roadmaps: bag_of_tricks, convnext_b, "
            "convnext_t", runs)
    refused(here("-m", "+step=nope1,nope2", *TINY), NOT_A_STEP.format("nope1"), runs)
    refused(here("-m", "+step=gelu,nope2", *TINY), NOT_A_STEP.format("nope2"), runs)
    refused(here("-m", "roadmap=convnext_t,nope", "+step=gelu", *TINY),
            "roadmap='nope': no roadmap/nope.yaml in conf/ or the config dirs; roadmaps: bag_of_tricks, convnext_b, "
            "convnext_t", runs)
    folder = tmp_path / "my_conf"
    write(folder, "roadmap/mine.yaml", "# @package _global_\nroadmap:\n  name: mine\n  steps:\n    resnet50: {}\n"
                                       "    gone: {parent: resnet50}\n")
    refused(here("-m", "--config-dir", str(folder), "+sweep=roadmap", "roadmap=mine", *TINY),
            f"roadmap mine: its step gone has no step/gone.yaml in conf/ or {folder}", runs)
    refused(here("-m", "seed=[1", *TINY), "seed=[1: Hydra cannot read this override (no viable alternative at input "
                                          "'[1'); its grammar: https://hydra.cc/docs/advanced/override_grammar/basic/",
            runs)


def test_sweep_syntax_still_passes_the_check():
    """glob(*) and range are Hydra's to expand: the check leaves them to it."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import run as entry

    for argv in (["-m", "+step=glob(*)"], ["-m", "+step=glob(kernel_*)", "seed=range(0,3)"],
                 ["-m", "+sweep=roadmap", "seed=0,1,2", "hydra/launcher=parallel"],
                 ["-m", "roadmap=convnext_t,convnext_b", "+step=choice(gelu,kernel_5)"], ["-m", "+sweep=isolated"]):
        entry.precheck(argv)  # no SystemExit


def test_a_sweep_whose_every_run_failed_exits_1_and_one_that_partly_failed_0(tmp_path, here):
    """It exited 0 either way; now a sweep with no finished run is an error, and a partial one says how many failed."""
    code, _, err = here("-m", "+step=gelu", "seed=abc,-1", *TINY)
    lines = err.strip().splitlines()
    assert code == 1 and lines[-1] == "error: none of the sweep's 2 runs finished (each one's error is above)", err
    assert lines[:2] == ["error: seed='abc': must be an integer >= 0", "error: seed=-1: must be an integer >= 0"]
    code, _, err = here("-m", "+step=gelu", "seed=0,abc", *TINY, "train.epochs=1")
    assert code == 0 and err.strip().splitlines()[-1] == (
        "sweep: 1 of 2 runs did not finish (failed or diverged: each one's line is above; the report lists them)"), err
    assert (tmp_path / "runs/embedded/convnext_t/gelu/seed0/summary.json").is_file()


def test_a_parallel_sweep_whose_every_run_failed_exits_1(tmp_path):
    """Through joblib the runs are other processes: the count comes from what the jobs returned to Hydra."""
    p = run("-m", "+step=gelu", "seed=abc,-1", *TINY, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
            runs_root=tmp_path, check=False)
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip().splitlines()[-1] == "error: none of the sweep's 2 runs finished (each one's error is above)"


@pytest.mark.parametrize("seeds", ["0", "abc", "-1", "1.5", "", "2 3", "01"])
def test_make_roadmap_refuses_seeds_that_are_not_a_positive_integer(seeds, tmp_path):
    """It printed 18 times `error: seed=''`, exited the sweep 0, then failed with "not a directory"; now one line
    before anything runs (make -n: nothing would run either way)."""
    p = subprocess.run(["make", "-n", "--no-print-directory", "roadmap", f"SEEDS={seeds}", f"RUNS={tmp_path}"], cwd=ROOT, capture_output=True,
                       text=True)
    assert p.returncode == 2 and p.stdout == "", p.stdout
    assert p.stderr.strip().splitlines() == [p.stderr.strip()]
    assert f"*** SEEDS='{seeds}': must be a positive integer (make roadmap trains seeds 0 to SEEDS-1).  Stop." \
        in p.stderr


def test_make_roadmap_sweeps_seeds_0_to_seeds_minus_1(tmp_path):
    p = subprocess.run(["make", "-n", "roadmap", "SEEDS=3", f"RUNS={tmp_path}"], cwd=ROOT, capture_output=True,
                       text=True)
    assert p.returncode == 0 and " seed=0,1,2 " in p.stdout, p.stderr
