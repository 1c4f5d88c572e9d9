"""python -m roadmap.gpu.check [--out DIR] [--rehearse]: the GPU path proven by one command (`make gpu-check`).

On a machine with a CUDA GPU, within --budget seconds (default 480: 8 minutes), it runs, most telling first, and
writes to DIR (default benchmarks/gpu):
  gpu_check.md                 device, versions, every stage with its result and wall time (rewritten after each)
  pytest_gpu.txt               every gpu-marked test (pytest -m gpu tests/): bf16, channels_last, compile, the device
                               loader and its prefetch, CUDA graphs against eager, resume
  training.csv                 three steps trained at full width on the device (the step as one CUDA graph where it
                               can be): img/s and top-1, every run with its status
  gpu_roadmap_calibration.md   the GPU roadmap's calibration (python -m roadmap.gpu.roadmap --calibrate-only)
  bench_gpu_<roadmap>.md/.csv  python -m roadmap.bench: every step, both endpoints vs torchvision's models, model
                               FLOP utilisation, the cifar-scale sweep estimate
  loader_gpu.md/.csv           the loader benchmark (device loader; folder loader per worker; JPEG decoding on the GPU)
  variants_gpu.md/.csv, profile_gpu_cifar*   the speed variants and the profile of the training step
  bench_gpu_<roadmap>_compiled.md/.csv   ConvNeXt-T vs torchvision's convnext_tiny, both torch.compile'd (and
                               ResNet-50 with --compile-all), when the budget has room (compiling takes minutes)
Each stage runs in a process group of its own with a time limit (all of it stopped there), so one failing stage
still leaves the others' results. Without a CUDA GPU it stops at once with a one-line message (exit 2);
--rehearse runs every stage on the CPU, tiny (`make gpu-check REHEARSE=1`, about a minute).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path

from roadmap import store
from roadmap.errors import OneLineParser
from roadmap.gpu.processes import bounded
from roadmap.gpu.roadmap import REHEARSAL, data_setting, robustness_setting
from roadmap.tables import markdown

ROOT = Path(__file__).resolve().parents[2]
TRAIN_STEPS = ("baseline", "inverted_bottleneck", "separate_downsampling")


class Stages:
    """Runs the stages one after the other within a total time budget, each in its own process group with its own
    limit (all of it stopped there: processes.bounded), and rewrites gpu_check.md after every stage (so a cut-off
    check still leaves its results)."""

    def __init__(self, out: Path, budget: float, header: list[str]):
        self.out, self.deadline, self.header, self.done, self.training = out, time.time() + budget, header, [], []

    def run(self, name: str, cmd: list[str], limit: float, log: Path | None = None) -> dict:
        timeout = min(limit, self.deadline - time.time())
        if timeout < 20:
            result = {"stage": name, "ok": False, "code": "skipped: the time budget is spent", "seconds": 0.0,
                      "tail": ""}
        else:
            result = stage(name, cmd, timeout, log)
        self.done.append(result)
        self.write()
        return result

    def skip(self, name: str, why: str, hint: str) -> None:
        """A stage left out on purpose: not a failure."""
        self.done.append({"stage": name, "ok": True, "code": f"not run: {why}", "seconds": 0.0, "tail": hint})
        self.write()

    def write(self) -> None:
        lines = [*self.header, *markdown([[s["stage"], _result(s), f"{s['seconds']:.0f} s"] for s in self.done],
                                         ("stage", "result", "wall time"))]
        lines += training_table(self.training)
        lines += ["", "Output of every stage (last lines):", ""]
        for s in self.done:
            lines += [f"### {s['stage']}", "", "```", s["tail"], "```", ""]
        (self.out / "gpu_check.md").write_text("\n".join(lines))


def _result(s: dict) -> str:
    if s["code"] == 0 and s["ok"]:
        return "ok"
    return str(s["code"]) if s["ok"] else f"FAILED: {s['code']}"


def stage(name: str, cmd: list[str], timeout: float, log: Path | None = None) -> dict:
    """Run one stage in a process group of its own; its result, wall time and the tail of its output."""
    print(f"[gpu-check] {name}: {' '.join(cmd[1:])}", flush=True)
    result = bounded(name, cmd, timeout, env={"WANDB_MODE": "disabled"})
    if log is not None:
        log.write_text(result["output"])
    result["ok"] = result["code"] == 0
    said = "ok" if result["ok"] else f"FAILED ({result['code']})"
    print(f"[gpu-check] {name}: {said} in {result['seconds']:.0f} s\n{result['tail']}", flush=True)
    return result


TRAINING_COLUMNS = ("step", "status", "dataset", "epochs", "batch_size", "precision", "cuda_graphs", "params",
                    "gmacs", "img_s", "train_time", "final_top1", "best_top1", "device", "message")


def training_rows(runs: Path) -> list[dict]:
    """Every run of the training stage, finished or not, in the roadmap's order (a failed one has only its step,
    status and message)."""
    rows = [{k: s.get(k) for k in TRAINING_COLUMNS} for _, s in store.summaries(runs)]
    order = ["resnet50", *TRAIN_STEPS[1:]]
    return sorted(rows, key=lambda r: order.index(r["step"]) if r["step"] in order else len(order))


def training_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    first = next((r for r in rows if r["status"] == "done"), rows[0])
    cells = []
    for r in rows:
        status = r["status"] if r["status"] == "done" else f"{r['status']}: {r['message'] or ''}".strip(": ")
        cells.append([r["step"], status, _cell(r["params"], ","), _cell(r["gmacs"], ".4f"), _cell(r["img_s"], ".0f"),
                      _cell(r["final_top1"], ".2f"), r["precision"] or "-", _cell(r["cuda_graphs"], "")])
    return ["", f"Training at full width on the device (scale=cifar, data={first['dataset']}, {first['epochs']} "
                f"epochs, the paper's recipe):", "",
            *markdown(cells, ("step", "status", "params", "GMACs", "img/s", "top-1", "precision", "CUDA graph"))]


def _cell(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def training(stages: Stages, setting: list[str], epochs: int, limit: float) -> dict:
    """Three steps of the roadmap at full width on the device (cifar scale: the paper's recipe at 32px), the step
    as one CUDA graph where it can be. Fails unless every run finished."""
    with tempfile.TemporaryDirectory() as runs:
        cmd = [sys.executable, "run.py", "-m", f"+step={','.join(TRAIN_STEPS)}", "scale=cifar", *setting,
               f"scale.epochs={epochs}", f"runs_root={runs}", "train.progress=false", "train.cuda_graphs=prefer"]
        stages.training = []
        result = stages.run("training", cmd, limit)
        stages.training = training_rows(Path(runs))
    finished = [r for r in stages.training if r["status"] == "done"]
    if result["ok"] and len(finished) < len(TRAIN_STEPS):
        result.update(ok=False, code=f"{len(finished)} of {len(TRAIN_STEPS)} runs finished")
    if stages.training:
        with open(stages.out / "training.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=TRAINING_COLUMNS)
            writer.writeheader()
            writer.writerows(stages.training)
    stages.write()
    return result


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m roadmap.gpu.check", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None,
                   help="default benchmarks/gpu (rehearsal: runs/gpu-check-rehearsal)")
    p.add_argument("--data", default="fashion_mnist", help="dataset of the training stage (default fashion_mnist)")
    p.add_argument("--data-root", type=Path, default=None, help="where the dataset is (the kit's fashion_mnist)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of the training stage")
    p.add_argument("--compile-all", action="store_true", help="compiled benchmark of ResNet-50 too, not only ConvNeXt-T")
    p.add_argument("--budget", type=float, default=480, help="seconds for all stages together (default 480)")
    p.add_argument("--rehearse", action="store_true", help="every stage on the CPU, tiny: no GPU needed")
    a = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not a.rehearse:
        print(f"error: make gpu-check needs a CUDA GPU, and torch {torch.__version__} sees none "
              f"(CUDA build: {torch.version.cuda or 'no'})", file=sys.stderr)
        return 2
    a.out = a.out or Path("runs/gpu-check-rehearsal" if a.rehearse else "benchmarks/gpu")
    a.out.mkdir(parents=True, exist_ok=True)
    device = "rehearsal on cpu" if a.rehearse else torch.cuda.get_device_name(0)
    header = [f"# GPU check: {device}", "",
              f"{datetime.datetime.now().isoformat(timespec='minutes')}; torch {torch.__version__} (CUDA "
              f"{torch.version.cuda}), Python {platform.python_version()}; `make gpu-check` "
              f"(python -m roadmap.gpu.check{' ' + ' '.join(argv) if argv else ''}), budget {a.budget:.0f} s.", ""]
    slack = REHEARSAL_SLACK if a.rehearse else 1
    stages = Stages(a.out, a.budget * slack, header)
    for name, cmd, limit, log in plan(a):
        limit *= slack
        if name == "training":
            tiny = [*REHEARSAL, "train.max_steps_per_epoch=2"] if a.rehearse else []
            tiny += robustness_setting()
            training(stages, [*data_setting(a.data, a.data_root), *tiny], 1 if a.rehearse else a.epochs, limit)
        elif name in OPTIONAL and stages.deadline - time.time() < OPTIONAL[name][0]:
            least, hint = OPTIONAL[name]
            stages.skip(name, f"under {least} s of the budget left", hint)
        else:
            stages.run(name, cmd, limit, log)
    print(a.out / "gpu_check.md")
    return 0 if all(s["ok"] for s in stages.done) else 1


# a rehearsal's stages (and their budget) get twice their GPU limits: a 2-core VM running a test suite beside it is
# slow, and a stage stopped at its limit would fail the rehearsal for nothing a GPU meets
REHEARSAL_SLACK = 2
# stages left out (not a failure) where less of the budget is left than they need: (seconds, how to run it instead)
OPTIONAL = {"benchmark, compiled": (150, "run it with --budget 900, or alone: python -m roadmap.bench --compile on "
                                         "--steps separate_downsampling")}


def plan(a) -> list[tuple]:
    """The stages, most telling first: (name, command, limit in seconds, log file); training's command is
    training()'s."""
    py, out = sys.executable, str(a.out)
    cpu = ["--device", "cpu"] if a.rehearse else []
    quick = ["--batch", "2", "--resolution", "64", "--iters", "1", "--warmup", "1", "--cifar-batch", "2",
             "--rounds", "1", "--steps", "resnet50", "separate_downsampling", "--no-trainer"] if a.rehearse else []
    sizes = quick or ["--iters", "10", "--warmup", "3", "--rounds", "2"]  # H200: 17 steps + endpoints in ~2 min
    small = ["--batch", "2", "--steps", "resnet50"] if a.rehearse else ["--steps", "resnet50", "separate_downsampling"]
    root = ["--data-root", str(a.data_root)] if a.data_root else []
    stages = [
        ("gpu tests", [py, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "--durations=8",
                       *(["--collect-only"] if a.rehearse else []), "tests/"], 240, a.out / "pytest_gpu.txt"),
        ("training", None, 150, None),
        ("calibration", [py, "-m", "roadmap.gpu.roadmap", "--calibrate-only", "--data", a.data, *root, "--out", out,
                         "--runs", str(a.out / "calibration"), *(["--rehearse"] if a.rehearse else [])], 120, None),
        ("benchmark", [py, "-m", "roadmap.bench", "--out", out, *cpu, *sizes], 150, None),
        ("loader benchmark", [py, "-m", "roadmap.bench", "--loader", "--out", out, *cpu,
                              *(["--quick"] if a.rehearse else [])], 90, None),
        ("variants", [py, "-m", "roadmap.bench", "--variants", "--budget", "5" if a.rehearse else "60",
                      "--scale", "cifar", *small, "--out", out, *cpu], 120, None),
        ("profile", [py, "-m", "roadmap.bench", "--profile", "--scale", "cifar", *small, "--out", out, *cpu], 90,
         None),
    ]
    # last: ConvNeXt-T and torchvision's convnext_tiny, torch.compile'd (compiling both takes minutes: it runs when the
    # budget has room for it, e.g. --budget 900; ResNet-50 too with --compile-all)
    if not a.rehearse:
        steps = ["resnet50", "separate_downsampling"] if a.compile_all else ["separate_downsampling"]
        stages.append(("benchmark, compiled", [py, "-m", "roadmap.bench", "--compile", "on", "--no-trainer",
                                               "--steps", *steps, "--out", out, *sizes], 360, None))
    return stages


if __name__ == "__main__":
    sys.exit(main())
