import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ["data=synthetic", "model.width_multiplier=0.125", "train.batch_size=64", "train.epochs=2",
        "data.train_size=256", "data.val_size=64", "eval.robustness_images=16"]


def run(*args, runs_root, check=True, env=None, **kwargs):
    """python run.py <args> runs_root=<runs_root>, from the repository root."""
    cmd = [sys.executable, str(ROOT / "run.py"), *args, f"runs_root={runs_root}"]
    full_env = {**os.environ, "WANDB_MODE": "disabled", **(env or {})}
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=full_env, **kwargs)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def free_port() -> int:
    """A TCP port nobody listens on now, for a torchrun test's rendezvous (tests may run in parallel, and other
    jobs on the machine may hold any fixed port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _entry():
    """run.py as a module (it sits at the repository root, outside the package)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import run as entry

    return entry


def _exit_code_and_output(call, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of call(): 0 unless it exits."""
    code = 0
    try:
        call()
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def run_here(*args, runs_root, capsys, precheck=True):
    """What `python run.py <args>` does for a single run (its precheck, then the same `execute` on the composed
    config), in this process: no interpreter start-up. precheck=False: `execute` alone, as a sweep's job meets
    the config (sweeps have no precheck). Returns (exit code, stdout, stderr)."""
    from roadmap.config import compose

    entry, argv = _entry(), [*args, f"runs_root={runs_root}"]

    def call():
        if precheck:
            entry.precheck(argv)
        entry.execute(compose(argv), multirun=False)

    return _exit_code_and_output(call, capsys)


def multirun_here(*args, runs_root, capsys):
    """What `python run.py -m <args>` does with the basic launcher (its jobs one after another), in this process:
    Hydra's own command line, sweep and job loop, without an interpreter start-up per call. Returns (exit code,
    stdout, stderr). Sweeps through other launchers (processes of their own) are run with `run`."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    entry, argv = _entry(), ["run.py", "-m", *args, f"runs_root={runs_root}"]
    main = hydra.main(version_base="1.3", config_path=str(ROOT / "conf"), config_name="config")(entry.main.__wrapped__)

    def call():
        saved, sys.argv = sys.argv, argv
        try:
            entry.precheck(argv[1:])
            main()
        finally:
            sys.argv = saved
            GlobalHydra.instance().clear()

    return _exit_code_and_output(call, capsys)


def table_rows(text: str, header_first: str) -> list[dict]:
    """The rows of the Markdown table in `text` whose header's first cell is `header_first`, as dicts of its cells
    (stripped), so a test reads a table by its columns whatever its padding."""
    lines = text.splitlines()
    cells = lambda line: [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]  # noqa: E731 (not "\|")
    start = next(i for i, line in enumerate(lines) if line.startswith("|") and cells(line)[0] == header_first)
    header, rows = cells(lines[start]), []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, cells(line), strict=True)))
    return rows
