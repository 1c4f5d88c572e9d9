"""make gpu-roadmap: a whole roadmap trained on one GPU within a time budget, then its report.

python -m roadmap.gpu.roadmap [--budget 480] [--seeds 2] [--data fashion_mnist] [--data-root DIR] [--epochs N]
                              [--roadmap convnext_t] [--runs runs/gpu] [--out docs/gpu] [--started T] [--rehearse]

1. Without a CUDA GPU it stops at once with one line (exit 2); --rehearse runs every stage on the CPU instead, with
   a tiny network and data (`make gpu-roadmap REHEARSE=1`, about a minute), into runs/gpu-rehearsal: never docs/gpu.
2. The data is loaded once (one line if it is not there: an offline node reads it from the kit, --data-root).
3. Calibration (skipped on a rerun, which reuses the plan recorded under --runs): a few training steps of the
   roadmap's kinds of network (ResNet-50, the depthwise ResNeXt, the inverted bottleneck, the largest kernel,
   ConvNeXt-T and the reference networks; each other step costs as the last of them before it) at the cifar scale,
   eager and as one CUDA graph, and each run's fixed costs: building it (data onto the device, the model), capturing
   the graph, one checkpoint, the robustness evaluation.
4. The plan: the faster step (eager or graphs, on the sweep's whole time: the sum of seconds per image) and as many
   epochs as fit every step and seed, fixed costs and the report included, in what is left of --budget (counted
   from --started: `make` passes the time it began, before installing the kit and probing the GPU).
5. One sweep per seed (`python run.py -m +sweep=roadmap scale=cifar seed=k ...`), each with the deadline: a cut
   drops later seeds before later steps; a cut sweep's runs are stopped by SIGTERM (they record where they were).
6. The report of its runs in --out (time-boxed) and gpu_roadmap.md: device, versions, calibration, plan, wall times.
"""

from __future__ import annotations

import datetime
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from roadmap import store
from roadmap.errors import ConfigError, OneLineParser
from roadmap.gpu.processes import bounded
from roadmap.tables import markdown

ROOT = Path(__file__).resolve().parents[2]
# The networks calibrated (those the roadmap has, and its references); every other step is taken to cost what the
# last adopted one of them before it costs (ResNet-50's variants, the depthwise ResNeXt, the inverted bottleneck with
# its kernels and micro design, the largest kernel, ConvNeXt-T).
CALIBRATION_STEPS = ("depthwise_conv", "inverted_bottleneck", "kernel_11")  # + the roadmap's baseline and endpoint
EVAL_COST = 1 / 3  # an evaluated image costs about a third of a trained one (forward only)
# What the calibration does not see: the report's time box (its 36 runs' report takes about 15 s; the rehearsal's
# 5 s), the margin for a cut sweep's runs to write their summaries and for the record; and a sweep's cost per job
# beyond its run (Hydra composes the job's config, the run loads its data and writes its files): 1.1 s on a 2-core
# AMD EPYC VM (the gaps between a rehearsal sweep's consecutive summaries less each run's train_time, 14 jobs).
RESERVE = {"gpu": {"report": 60.0, "margin": 15.0}, "rehearsal": {"report": 20.0, "margin": 5.0}}
JOB_SECONDS = 1.2
REHEARSAL = ["train.device=cpu", "model.width_multiplier=0.125", "scale.batch_size=16", "+data.train_size=256",
             "+data.val_size=128", "eval.robustness_images=8", "train.threads=1"]  # a tiny network and data


@dataclass(frozen=True)
class Cost:
    """What one kind of network costs on the device, measured."""
    img_s: float  # training images per second, after warm-up
    build: float  # seconds to build a run: data onto the device, the model, the loaders
    capture: float  # the warm-up's seconds beyond as many steady steps (cuDNN's choices; the graph's capture)
    checkpoint: float  # one last.pt
    robustness: float  # the corrupted-images evaluation after training

    def per_epoch(self, train_images: int, val_images: int) -> float:
        return (train_images + EVAL_COST * val_images) / self.img_s + self.checkpoint

    @property
    def fixed(self) -> float:
        return JOB_SECONDS + self.build + self.capture + self.robustness


@dataclass(frozen=True)
class Plan:
    epochs: int
    runs: int
    graphs: bool
    seconds_per_epoch: float  # all runs together: training, evaluation and checkpoint
    fixed: float  # all runs together: each job's start, build, capture, robustness
    estimate: float  # the sweeps' expected wall time

    def describe(self) -> str:
        return (f"{self.runs} runs x {self.epochs} epoch{'s' * (self.epochs != 1)}, about "
                f"{self.seconds_per_epoch / self.runs:.1f} s per epoch and {self.fixed / self.runs:.1f} s fixed per "
                f"run: {self.estimate / 60:.1f} min expected")


def plan(budget: float, runs: list[Cost], train_images: int, val_images: int, graphs: bool,
         epochs: int | None = None) -> Plan:
    """As many epochs as fit `budget` seconds for `runs` (each run's measured or stand-in cost; at least 1 epoch),
    or the given epochs."""
    per_epoch = sum(c.per_epoch(train_images, val_images) for c in runs)
    fixed = sum(c.fixed for c in runs)
    chosen = epochs if epochs is not None else max(1, math.floor((budget - fixed) / per_epoch))
    return Plan(chosen, len(runs), graphs, per_epoch, fixed, fixed + chosen * per_epoch)


def stand_ins(roadmap) -> dict[str, str]:
    """Every step and reference of the roadmap -> the calibrated network whose cost it is taken to have: itself, or
    the last calibrated adopted step before it (a branch such as kernel 11 is not what the steps after it build on);
    the roadmap's first calibrated step for the steps before that."""
    calibrated = calibration_steps(roadmap)
    out, last = {}, next(s.name for s in roadmap.steps if s.name in calibrated)
    for step in roadmap.steps:
        out[step.name] = step.name if step.name in calibrated else last
        last = step.name if step.name in calibrated and step.adopted else last
    return out | {r.name: r.name for r in roadmap.references}


def faster(costs: dict[tuple[str, bool], Cost], runs: list[str]) -> bool:
    """Graphs where they make the sweep shorter: the sum over the runs of seconds per image (not of img/s, which
    the fastest network would decide)."""
    if not all((s, True) in costs for s in runs):
        return False
    return sum(1 / costs[s, True].img_s for s in runs) < sum(1 / costs[s, False].img_s for s in runs)


def calibrate(step: str, setting: list[str], graphs: bool, steps: int = 20) -> Cost:
    """What `step` costs at the sweep's setting (the trainer's public functions, in a scratch runs folder)."""
    import torch  # here, as the module's other heavy imports: its arguments and a recorded plan are checked without them

    from roadmap.config import compose
    from roadmap.train import build, check, measure_robustness, save_checkpoint, train_batch

    def now():
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    with tempfile.TemporaryDirectory() as scratch:
        cfg = compose([f"+step={step}", *setting, f"train.cuda_graphs={'prefer' if graphs else 'false'}",
                       f"runs_root={scratch}"])
        t0 = now()
        run = check(cfg)
        job = build(run, None)
        built = now()
        job.net.train()
        batches = iter(job.train_loader)
        warmup = min(8, max(1, len(job.train_loader) - steps))
        for _ in range(warmup):  # cuDNN's choices, the graph's capture
            train_batch(run, job, *next(batches))
        warm = now()
        count = min(steps, len(job.train_loader) - warmup)
        for _ in range(count):
            train_batch(run, job, *next(batches))
        steady = now()
        per_step = (steady - warm) / count
        run.dir.mkdir(parents=True)
        save_checkpoint(run, job, 1, run.dir)
        saved = now()
        if run.settings.eval.robustness:
            measure_robustness(run, job)
        return Cost(img_s=count * run.settings.train.batch_size / (steady - warm), build=built - t0,
                    capture=max(0.0, (warm - built) - warmup * per_step), checkpoint=saved - steady,
                    robustness=now() - saved)


def calibration_steps(roadmap) -> list[str]:
    """The roadmap's baseline, the CALIBRATION_STEPS it has, its endpoint (in its order), and its references."""
    names = roadmap.names()
    ours = {roadmap.baseline, *CALIBRATION_STEPS, roadmap.endpoint.name}
    return [*(s for s in names if s in ours), *(r.name for r in roadmap.references)]


def measure(roadmap, setting: list[str], cuda: bool) -> dict[tuple[str, bool], Cost]:
    costs = {}
    for step in calibration_steps(roadmap):
        for graphs in ((False, True) if cuda else (False,)):  # a CPU has no graphs: the rehearsal measures eager
            costs[step, graphs] = calibrate(step, setting, graphs)
            c = costs[step, graphs]
            print(f"[gpu-roadmap] calibration: {step} {'graph' if graphs else 'eager'}: {c.img_s:.0f} img/s, "
                  f"build {c.build:.1f} s, capture {c.capture:.1f} s, checkpoint {c.checkpoint:.2f} s, "
                  f"robustness {c.robustness:.1f} s", flush=True)
    return costs


def load_plan(path: Path, args) -> dict | None:
    """The plan a first run recorded under --runs: a rerun finishes that roadmap (its epochs, step and costs)."""
    if not path.exists():
        return None
    try:
        recorded = json.loads(path.read_text())
        epochs = int(recorded["plan"]["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{path} is damaged: remove it (its runs stay) or use another --runs") from None
    for key in ("data", "roadmap", "rehearse"):
        if recorded.get(key) != getattr(args, key):
            raise ConfigError(f"{args.runs} holds a gpu-roadmap of {key}={recorded.get(key)!r}, not "
                              f"{getattr(args, key)!r}: use another --runs")
    if args.epochs is not None and args.epochs != epochs:
        raise ConfigError(f"{args.runs} holds a {epochs}-epoch roadmap, not --epochs {args.epochs}: finish it without "
                          f"--epochs, or use another --runs")
    return recorded


def data_setting(data: str, root: Path | None) -> list[str]:
    """The dataset's overrides on a GPU node: from `root` (the kit's) where given, never downloaded (an offline node
    would wait for the network: a missing dataset is one line at once)."""
    return [f"data={data}", *([f"data.root={root.resolve()}"] if root else []),
            *(["data.download=false"] if data != "synthetic" else [])]


def robustness_setting() -> list[str]:
    """[] where the robustness pass can run; else eval.robustness=false, said in one line (a node's TorchCodec built
    for another torch than the node's cannot encode the JPEG corruption: the roadmap trains and reports without it)."""
    from roadmap.data.corruptions import jpeg_unavailable

    why = jpeg_unavailable()
    if why is None:
        return []
    print(f"[gpu-roadmap] TorchCodec does not work here ({why}): eval.robustness=false, the runs have no "
          f"robustness", flush=True)
    return ["eval.robustness=false"]


def sizes(setting_cfg) -> tuple[int, int]:
    from roadmap.data.datasets import load_tensor_dataset

    train, val = load_tensor_dataset(setting_cfg.data, "cpu")  # also: the data is there, or one line
    return len(train.labels), len(val.labels)


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m roadmap.gpu.roadmap", description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=480, help="seconds for everything, from --started")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--data", default="fashion_mnist")
    p.add_argument("--data-root", type=Path, default=None, help="where the dataset is (the kit's fashion_mnist)")
    p.add_argument("--epochs", type=int, default=None, help="default: as many as fit the budget")
    p.add_argument("--roadmap", default="convnext_t")
    p.add_argument("--runs", type=Path, default=None, help="default runs/gpu (runs/gpu-rehearsal with --rehearse)")
    p.add_argument("--out", type=Path, default=None, help="default docs/gpu (the runs folder's report/ with "
                                                           "--rehearse)")
    p.add_argument("--started", type=float, default=None, help="the clock's start (seconds since the epoch)")
    p.add_argument("--rehearse", action="store_true", help="every stage on the CPU, tiny: no GPU needed")
    p.add_argument("--calibrate-only", action="store_true", help="the calibration alone, to --out "
                                                                  "(gpu_roadmap_calibration.md; make gpu-check)")
    args = p.parse_args(argv)
    start = args.started or time.time()
    args.runs = args.runs or ROOT / "runs" / ("gpu-rehearsal" if args.rehearse else "gpu")
    args.out = args.out or (args.runs / "report" if args.rehearse else ROOT / "docs" / "gpu")
    import torch

    try:
        if args.rehearse and args.out.resolve().is_relative_to((ROOT / "docs").resolve()):
            raise ConfigError(f"--out {args.out}: a rehearsal never writes docs/ (only a GPU's roadmap goes there)")
        if not args.rehearse and not torch.cuda.is_available():
            raise ConfigError("make gpu-roadmap needs a CUDA GPU, and torch sees none")
        if args.seeds < 1 or args.budget <= 0:
            raise ConfigError(f"--seeds {args.seeds} --budget {args.budget:g}: both must be positive")
        return roadmap_on_gpu(args, start, torch)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def roadmap_on_gpu(args, start: float, torch) -> int:
    from roadmap.config import compose, load_roadmap
    from roadmap.config import validate

    roadmap = load_roadmap(args.roadmap)
    args.robustness = robustness_setting()
    setting = ["scale=cifar", f"roadmap={args.roadmap}", "train.progress=false", *args.robustness,
               *data_setting(args.data, args.data_root), *(REHEARSAL if args.rehearse else ["train.device=cuda"])]
    train_images, val_images = sizes(validate(compose(["+step=resnet50", *setting])))
    if args.calibrate_only:
        costs = measure(roadmap, setting, torch.cuda.is_available() and not args.rehearse)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_roadmap_calibration.md").write_text("\n".join([
            f"# Calibration of make gpu-roadmap: {device_name(args, torch)}", "", *calibration_table(costs), ""]))
        return 0
    plan_file = args.runs / "gpu_roadmap_plan.json"
    recorded = load_plan(plan_file, args)
    if recorded is not None:
        chosen = Plan(**recorded["plan"])
        costs = {(c["step"], c["graphs"]): Cost(**c["cost"]) for c in recorded["calibration"]}
        print(f"[gpu-roadmap] the plan recorded in {plan_file}: {chosen.describe()}", flush=True)
    else:
        costs = measure(roadmap, setting, torch.cuda.is_available() and not args.rehearse)
        every_run = [network for network in stand_ins(roadmap).values() for _ in range(args.seeds)]
        graphs = faster(costs, every_run)
        left = args.budget - (time.time() - start) - sum(reserve(args).values())
        chosen = plan(left, [costs[s, graphs] for s in every_run], train_images, val_images, graphs, args.epochs)
        args.runs.mkdir(parents=True, exist_ok=True)
        plan_file.write_text(json.dumps({
            "data": args.data, "roadmap": args.roadmap, "rehearse": args.rehearse, "plan": asdict(chosen),
            "calibration": [{"step": s, "graphs": g, "cost": asdict(c)} for (s, g), c in costs.items()]}, indent=1))
        print(f"[gpu-roadmap] {'CUDA graphs' if chosen.graphs else 'eager'} step; {chosen.describe()}", flush=True)
    sweeps = sweep_seeds(args, start, setting, chosen)
    group = store.group_dir(args.runs, "cifar", args.roadmap)
    report = bounded("report", [sys.executable, "-m", "roadmap.report", str(group), "--out", str(args.out)],
                     max(5.0, args.budget - (time.time() - start) - 2))
    write_record(args, torch, costs, chosen, sweeps, report, time.time() - start)
    return 0 if all(s["code"] == 0 for s in sweeps) and report["code"] == 0 else 1


def sweep_seeds(args, start: float, setting: list[str], chosen: Plan) -> list[dict]:
    """One sweep per seed, each stopped at the deadline (the report's time box and a margin before the budget's end):
    seed 0's every step comes before seed 1's first."""
    deadline = start + args.budget - sum(reserve(args).values())
    graphs = "prefer" if chosen.graphs or args.rehearse else "false"  # a rehearsal goes through graphs' refusals
    done = []
    for seed in range(args.seeds):
        left = deadline - time.time()
        if left < 1:
            done.append({"seed": seed, "code": "not run: the budget is spent", "seconds": 0.0})
            continue
        cmd = [sys.executable, str(ROOT / "run.py"), "-m", "+sweep=roadmap", *setting, f"train.epochs={chosen.epochs}",
               f"train.cuda_graphs={graphs}", f"seed={seed}", f"runs_root={args.runs}"]
        print(f"[gpu-roadmap] seed {seed}: {' '.join(cmd[2:])} ({left:.0f} s left)", flush=True)
        result = bounded(f"seed {seed}", cmd, left, echo=True)
        done.append({"seed": seed, "command": " ".join(cmd[2:]), **result})
    return done


def write_record(args, torch, costs: dict, chosen: Plan, sweeps: list[dict], report: dict, total: float) -> None:
    where = device_name(args, torch)
    lines = [f"# The {args.roadmap} roadmap on one GPU{' (a rehearsal on the CPU)' if args.rehearse else ''}",
             "",
             f"{datetime.datetime.now().isoformat(timespec='minutes')}; {where}; torch {torch.__version__} (CUDA "
             f"{torch.version.cuda}); `make gpu-roadmap` (python -m roadmap.gpu.roadmap), budget {args.budget:.0f} s, "
             f"data {args.data}{'; no robustness pass (TorchCodec does not work here)' if args.robustness else ''}.",
             "",
             *calibration_table(costs),
             "",
             f"Plan: the {'CUDA graph' if chosen.graphs else 'eager'} step; {chosen.describe()}. The sweeps took "
             f"{sum(s['seconds'] for s in sweeps):.0f} s.",
             "",
             *markdown([*[[f"seed {s['seed']}", outcome(s["code"]), f"{s['seconds']:.0f} s"] for s in sweeps],
                        ["report", outcome(report["code"]), f"{report['seconds']:.0f} s"]],
                       ["sweep", "result", "wall time"]),
             "",
             f"Everything, from the start of `make` (the kit's install and the GPU probe included): {total:.0f} s of "
             f"{args.budget:.0f} s.",
             "",
             *[f"- seed {s['seed']}: `{s['command']}`" for s in sweeps if "command" in s],
             ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_roadmap.md").write_text("\n".join(lines))
    print(f"[gpu-roadmap] {args.out / 'gpu_roadmap.md'}", flush=True)


def reserve(args) -> dict[str, float]:
    return RESERVE["rehearsal" if args.rehearse else "gpu"]


def device_name(args, torch) -> str:
    return "rehearsal on cpu" if args.rehearse else torch.cuda.get_device_name()


def calibration_table(costs: dict) -> list[str]:
    return ["Calibration at the sweep's setting (training img/s; a run's fixed costs in seconds):", "",
            *markdown([[s, "graph" if g else "eager", f"{c.img_s:.0f}", f"{c.build:.1f}", f"{c.capture:.1f}",
                        f"{c.checkpoint:.2f}", f"{c.robustness:.1f}"] for (s, g), c in costs.items()],
                      ["step", "step mode", "img/s", "build", "capture", "checkpoint", "robustness"])]


def outcome(code) -> str:
    return "ok" if code == 0 else f"exit {code}" if isinstance(code, int) else str(code)


if __name__ == "__main__":
    sys.exit(main())
