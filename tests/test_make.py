"""Every `python -m MODULE` a make target runs names a module that exists and runs as a script (a module renamed
in the package and not in the Makefile would spoil make gpu-check on the one GPU run it gets)."""

import importlib
import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def modules(target: str, *args: str) -> list[str]:
    """The modules `make -n TARGET ARGS` would run with -m, in order."""
    p = subprocess.run(["make", "-n", "--no-print-directory", target, *args], cwd=ROOT, capture_output=True, text=True,
                       check=True)
    return re.findall(r"-m (roadmap[\w.]*)", p.stdout)


def runnable(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    if spec is None:
        return False
    if spec.submodule_search_locations:  # a package runs through its __main__
        return importlib.util.find_spec(f"{name}.__main__") is not None
    return True


@pytest.mark.parametrize("target, args, expected", [
    ("roadmap", ["SEEDS=1"], ["roadmap.train.launch", "roadmap.report"]),
    ("figure", [], ["roadmap.report"]),
    ("bench", [], ["roadmap.bench"]),
    ("gpu-check", ["REHEARSE=1", "KIT=kit"], ["roadmap.gpu.kit", "roadmap.gpu.check"]),
    ("gpu-roadmap", ["REHEARSE=1"], ["roadmap.gpu.roadmap"]),
    ("gpu-kit", [], ["roadmap.gpu.kit"]),
])
def test_make_targets_run_modules_that_exist(target, args, expected):
    found = modules(target, *args)
    assert found == expected
    assert [m for m in found if not runnable(m)] == []


@pytest.mark.parametrize("module, argv, message", [
    ("roadmap.report.build", ["--bogus"], "the following arguments are required: runs_dir"),
    ("roadmap.bench.cli", ["--bogus"], "unrecognized arguments: --bogus"),
    ("roadmap.bench.complexity", ["--bogus"], "unrecognized arguments: --bogus"),
    ("roadmap.gpu.check", ["--budget", "x"], "argument --budget: invalid float value: 'x'"),
    ("roadmap.gpu.roadmap", ["--seeds", "x"], "argument --seeds: invalid int value: 'x'"),
    ("roadmap.gpu.kit", ["bogus"], "argument command: invalid choice: 'bogus' (choose from 'build', 'install')"),
])
def test_a_bad_argument_is_one_line_and_exit_2(module, argv, message, capsys):
    """Each command line says a bad argument in one line (no usage block), naming its --help, and exits 2."""
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(module).main(argv)
    prog = "python -m " + module.removesuffix(".build").removesuffix(".cli")
    assert (stop.value.code, capsys.readouterr().err) == (2, f"error: {message} (see {prog} --help)\n")
