"""make gpu-roadmap: a whole roadmap trained on one GPU within a time budget, then its report.

python -m roadmap.gpu_roadmap [--budget 480] [--seeds 2] [--data fashion_mnist] [--epochs N] [--roadmap convnext_t]
                              [--runs runs/gpu] [--out docs/gpu]

1. Without a CUDA GPU it stops at once with one line (exit 2).
2. Calibration: a few training steps of the roadmap's cheapest-to-costliest kinds of network (ResNet-50, the
   depthwise ResNeXt, ConvNeXt-T) at the cifar scale (full widths, 32px, batch 512, the paper's recipe), with the
   training step eager and as one CUDA graph; the faster mode is used for the sweep (train.cuda_graphs), and the
   epochs are as many as fit the budget left for every step and seed (unless --epochs gives them).
3. The sweep (`python run.py -m +sweep=roadmap scale=cifar data=<data> ...`), cut at the budget's end.
4. The report of its runs in --out (roadmap.png, transfer.png, results.md, agreement.json, results.csv with the
   device of every run) and gpu_roadmap.md: device, versions, the calibration, the plan and the wall times.
"""

from __future__ import annotations

import argparse
import datetime
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import store

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION_STEPS = ("resnet50", "depthwise_conv", "separate_downsampling")
EVAL_COST = 1 / 3  # an evaluated image costs about a third of a trained one (forward only)
PER_RUN_SECONDS = 4.0  # a run's fixed cost in the sweep: data onto the device, model, graph capture, checkpoints


@dataclass(frozen=True)
class Plan:
    epochs: int
    runs: int
    seconds_per_epoch: float  # per run, training and evaluation, from the calibration
    estimate: float  # the sweep's expected wall time

    def describe(self) -> str:
        return (f"{self.runs} runs x {self.epochs} epoch{'s' * (self.epochs != 1)}, about "
                f"{self.seconds_per_epoch:.1f} s per epoch: {self.estimate / 60:.1f} min expected")


def plan(budget: float, runs: int, train_images: int, val_images: int, img_s: float,
         epochs: int | None = None) -> Plan:
    """As many epochs as fit `budget` seconds for `runs` runs at `img_s` training images per second (at least 1),
    or the given epochs."""
    per_epoch = (train_images + EVAL_COST * val_images) / img_s
    fit = math.floor((budget / runs - PER_RUN_SECONDS) / per_epoch)
    chosen = epochs if epochs is not None else max(1, fit)
    return Plan(chosen, runs, per_epoch, runs * (PER_RUN_SECONDS + chosen * per_epoch))


def calibrate(step: str, data: str, graphs: bool, roadmap: str, steps: int = 20) -> float:
    """Training img/s of `step` at the cifar scale on the GPU, after warm-up (and graph capture)."""
    import torch

    from . import train as T
    from .config import compose

    cfg = compose([f"+step={step}", f"roadmap={roadmap}", "scale=cifar", f"data={data}", "train.device=cuda",
                   f"train.cuda_graphs={str(graphs).lower()}", "runs_root=/nonexistent"])
    run = T.check(cfg)
    job = T.build(run, None)
    job.net.train()
    batches = iter(job.train_loader)  # steps + 8 batches of one epoch
    for _ in range(8):  # warm-up: cuDNN's choices, the graph's capture
        T.train_batch(run, job, *next(batches))
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        T.train_batch(run, job, *next(batches))
    torch.cuda.synchronize()
    return steps * run.settings.train.batch_size / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=480, help="seconds for everything, from the start")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--data", default="fashion_mnist")
    p.add_argument("--epochs", type=int, default=None, help="default: as many as fit the budget")
    p.add_argument("--roadmap", default="convnext_t")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "gpu")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "gpu")
    args = p.parse_args(argv)
    start = time.time()
    import torch

    if not torch.cuda.is_available():
        print("error: make gpu-roadmap needs a CUDA GPU, and torch sees none", file=sys.stderr)
        return 2
    from .config import load_roadmap

    roadmap = load_roadmap(args.roadmap)
    runs = len(roadmap.steps) * args.seeds
    rates = {(s, g): calibrate(s, args.data, g, args.roadmap) for s in CALIBRATION_STEPS for g in (False, True)}
    graphs = sum(rates[s, True] for s in CALIBRATION_STEPS) > sum(rates[s, False] for s in CALIBRATION_STEPS)
    img_s = len(CALIBRATION_STEPS) / sum(1 / rates[s, graphs] for s in CALIBRATION_STEPS)  # harmonic mean
    sizes = {"fashion_mnist": (60_000, 10_000), "cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000)}
    train_images, val_images = sizes.get(args.data, (50_000, 10_000))
    left = args.budget - (time.time() - start) - 45  # the report and a margin
    chosen = plan(left, runs, train_images, val_images, img_s, args.epochs)
    print(f"[gpu-roadmap] {'CUDA graphs' if graphs else 'eager'} step, {img_s:.0f} img/s; {chosen.describe()}",
          flush=True)
    seeds = ",".join(str(k) for k in range(args.seeds))
    sweep = [sys.executable, str(ROOT / "run.py"), "-m", "+sweep=roadmap", f"roadmap={args.roadmap}", "scale=cifar",
             f"data={args.data}", f"train.epochs={chosen.epochs}", f"train.cuda_graphs={str(graphs).lower()}",
             f"seed={seeds}", f"runs_root={args.runs}"]
    t0 = time.time()
    try:
        code = subprocess.run(sweep, cwd=ROOT, timeout=max(60.0, args.budget - (time.time() - start) - 30)).returncode
    except subprocess.TimeoutExpired:
        code = "cut at the budget's end (finished runs are kept; rerun to finish the others)"
    sweep_seconds = time.time() - t0
    group = store.group_dir(args.runs, "cifar", args.roadmap)
    report = subprocess.run([sys.executable, "-m", "roadmap.report", str(group), "--out", str(args.out)], cwd=ROOT)
    write_record(args, torch, rates, graphs, chosen, sweep, code, sweep_seconds, time.time() - start)
    return 0 if code == 0 and report.returncode == 0 else 1


def write_record(args, torch, rates, graphs, chosen: Plan, sweep, code, sweep_seconds, total) -> None:
    lines = [f"# The {args.roadmap} roadmap on one GPU",
             "",
             f"{datetime.datetime.now().isoformat(timespec='minutes')}; {torch.cuda.get_device_name()}; torch "
             f"{torch.__version__} (CUDA {torch.version.cuda}); `make gpu-roadmap` (python -m roadmap.gpu_roadmap), "
             f"budget {args.budget:.0f} s.",
             "",
             "Calibration (training img/s at the cifar scale: full widths, 32px, batch 512, bf16):",
             "",
             "| step | eager | CUDA graph |",
             "|---|---|---|",
             *[f"| {s} | {rates[s, False]:.0f} | {rates[s, True]:.0f} |" for s in CALIBRATION_STEPS],
             "",
             f"Chosen: the {'CUDA graph' if graphs else 'eager'} step; {chosen.describe()}.",
             f"Sweep: `{' '.join(str(a) for a in sweep[1:])}`: exit {code}, {sweep_seconds:.0f} s; everything "
             f"{total:.0f} s.",
             ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_roadmap.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
