"""python -m roadmap.gpu_check [--out DIR]: the GPU path proven by one command (`make gpu-check`).

On a machine with a CUDA GPU, within --budget seconds (default 480: 8 minutes), it runs and writes to DIR (default
benchmarks/gpu):
  gpu_check.md                 device, versions, every stage with its result and wall time (rewritten after each)
  pytest_gpu.txt               the GPU tests (pytest -m gpu): bf16, channels_last, compile, device loader, resume
  bench_gpu_<roadmap>.md/.csv  python -m roadmap.bench: every step, both endpoints vs torchvision's models, model
                               FLOP utilisation, the cifar-scale sweep estimate
  loader_gpu.md/.csv           the loader benchmark (device loader; folder loader per worker; JPEG decoding on the GPU)
  training.csv                 three steps trained at full width on the device: img/s and top-1
  bench_gpu_<roadmap>_compiled.md/.csv   ConvNeXt-T vs torchvision's convnext_tiny, both torch.compile'd (and
                               ResNet-50 with --compile-all), when the budget has room (compiling takes minutes)
Each stage runs in its own process with a time limit, so one failing stage still leaves the others' results.
Without a CUDA GPU it stops at once with a one-line message (exit 2).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import store

ROOT = Path(__file__).resolve().parents[1]
TRAIN_STEPS = ("baseline", "inverted_bottleneck", "separate_downsampling")


class Stages:
    """Runs the stages one after the other within a total time budget, each in its own process with its own limit,
    and rewrites gpu_check.md after every stage (so a cut-off check still leaves its results)."""

    def __init__(self, out: Path, budget: float, header: list[str]):
        self.out, self.deadline, self.header, self.done, self.training = out, time.time() + budget, header, [], []

    def run(self, name: str, cmd: list[str], limit: int, log: Path | None = None) -> dict:
        timeout = int(min(limit, self.deadline - time.time()))
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
        lines = [*self.header, "| stage | result | wall time |", "|---|---|---|"]
        lines += [f"| {s['stage']} | {_result(s)} | {s['seconds']:.0f} s |" for s in self.done]
        rows = self.training
        if rows:
            lines += ["", f"Training at full width on the device (scale=cifar, data={rows[0]['dataset']}, "
                          f"{rows[0]['epochs']} epochs, the paper's recipe):", "",
                      "| step | status | params | GMACs | img/s | top-1 | precision |", "|---|---|---|---|---|---|---|"]
            lines += [f"| {r['step']} | {r['status']} | {r['params']:,} | {r['gmacs']:.4f} | {r['img_s'] or 0:.0f} | "
                      f"{r['final_top1'] or 0:.2f} | {r['precision']} |" for r in rows]
        lines += ["", "Output of every stage (last lines):", ""]
        for s in self.done:
            lines += [f"### {s['stage']}", "", "```", s["tail"], "```", ""]
        (self.out / "gpu_check.md").write_text("\n".join(lines))


def _result(s: dict) -> str:
    if s["code"] == 0:
        return "ok"
    return str(s["code"]) if s["ok"] else f"FAILED: {s['code']}"


def stage(name: str, cmd: list[str], timeout: int, log: Path | None = None) -> dict:
    """Run one stage as a subprocess; its result, wall time and the tail of its output."""
    print(f"[gpu-check] {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"})
        output, code = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        output = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        code = f"timed out after {timeout} s"
    seconds = time.perf_counter() - t0
    if log is not None:
        log.write_text(output)
    tail = "\n".join(output.strip().splitlines()[-12:])
    print(f"[gpu-check] {name}: {'ok' if code == 0 else f'FAILED ({code})'} in {seconds:.0f} s\n{tail}", flush=True)
    return {"stage": name, "ok": code == 0, "code": code, "seconds": seconds, "tail": tail}


def training(stages: Stages, data: str, epochs: int, limit: int, extra=()) -> None:
    """Three steps of the roadmap at full width on the device (cifar scale: the paper's recipe at 32px)."""
    with tempfile.TemporaryDirectory() as runs:
        cmd = [sys.executable, "run.py", "-m", f"+step={','.join(TRAIN_STEPS)}", "scale=cifar", f"data={data}",
               f"scale.epochs={epochs}", f"runs_root={runs}", "train.progress=false", *extra]
        rows = []
        stages.training = rows
        result = stages.run("training", cmd, limit)
        for _, s in store.summaries(Path(runs)):
            rows.append({k: s.get(k) for k in ("step", "status", "dataset", "epochs", "batch_size", "precision",
                                               "params", "gmacs", "img_s", "train_time", "final_top1", "best_top1",
                                               "device")})
    order = ["resnet50", *TRAIN_STEPS[1:]]
    rows.sort(key=lambda r: order.index(r["step"]) if r["step"] in order else 0)
    if rows:
        with open(stages.out / "training.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    stages.write()
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m roadmap.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("benchmarks/gpu"))
    p.add_argument("--data", default="fashion_mnist", help="dataset of the training stage (default fashion_mnist)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of the training stage")
    p.add_argument("--compile-all", action="store_true", help="compiled benchmark of ResNet-50 too, not only ConvNeXt-T")
    p.add_argument("--budget", type=float, default=480, help="seconds for all stages together (default 480)")
    p.add_argument("--allow-cpu", action="store_true", help=argparse.SUPPRESS)  # the tests run the stages on a CPU
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)  # tiny settings, for those tests
    a = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not a.allow_cpu:
        print(f"error: make gpu-check needs a CUDA GPU, and torch {torch.__version__} sees none "
              f"(CUDA build: {torch.version.cuda or 'no'})", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if gpu else f"{platform.processor() or platform.machine()} CPU"
    header = [f"# GPU check on {device}", "",
              f"{datetime.datetime.now().isoformat(timespec='minutes')}; torch {torch.__version__} (CUDA "
              f"{torch.version.cuda}), Python {platform.python_version()}; `make gpu-check` "
              f"(python -m roadmap.gpu_check{' ' + ' '.join(argv) if argv else ''}), budget {a.budget:.0f} s.", ""]
    stages = Stages(a.out, a.budget, header)
    py = sys.executable
    quick = ["--batch", "2", "--resolution", "64", "--iters", "1", "--warmup", "1", "--cifar-batch", "2",
             "--rounds", "1", "--steps", "resnet50", "separate_downsampling", "--no-trainer"] if a.quick else []
    stages.run("gpu tests", [py, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "--durations=8",
                             "tests/test_gpu.py"], 180, a.out / "pytest_gpu.txt")
    sizes = quick or ["--iters", "10", "--warmup", "3", "--rounds", "2"]  # H200: 17 steps + endpoints in ~2 min
    stages.run("benchmark", [py, "-m", "roadmap.bench", "--out", str(a.out), *sizes], 150)
    stages.run("loader benchmark", [py, "-m", "roadmap.bench", "--loader", "--out", str(a.out),
                                    *(["--quick"] if a.quick else [])], 90)
    tiny = ["data=synthetic", "train.max_steps_per_epoch=2", "data.train_size=64", "data.val_size=32",
            "scale.batch_size=16"] if a.quick else []
    training(stages, a.data, 1 if a.quick else a.epochs, 150, tiny)
    # last: ConvNeXt-T and torchvision's convnext_tiny, torch.compile'd (compiling both takes minutes: it runs when the
    # budget has room for it, e.g. --budget 900; ResNet-50 too with --compile-all)
    steps = ["resnet50", "separate_downsampling"] if a.compile_all else ["separate_downsampling"]
    if a.quick:
        pass
    elif stages.deadline - time.time() < 150:
        stages.skip("benchmark, compiled", "under 150 s of the budget left", "run it with --budget 900, or alone: "
                    "python -m roadmap.bench --compile on --steps separate_downsampling")
    else:
        stages.run("benchmark, compiled", [py, "-m", "roadmap.bench", "--compile", "on", "--no-trainer", "--steps",
                                           *steps, "--out", str(a.out), *sizes], 360)
    print(a.out / "gpu_check.md")
    return 0 if all(s["ok"] for s in stages.done) else 1


if __name__ == "__main__":
    sys.exit(main())
