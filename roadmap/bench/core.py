"""python -m roadmap.bench: the cost of every roadmap step on this device, next to torchvision's own models.

For every step of a roadmap (the published networks, 1000 classes): params, GMACs, training img/s (forward +
backward + AdamW step), inference img/s and peak memory; torchvision's resnet50 and convnext_tiny under the same
settings, with and/or without torch.compile (--compile off|on|both), and our endpoints' step-time ratios to them;
the model FLOP utilisation on GPU; the training throughput at the `cifar` scale and the estimated wall time of the
whole cifar-scale sweep; and the trainer's end-to-end img/s against the model alone (embedded scale on CPU, cifar
scale on GPU). Writes bench_<cpu|gpu>_<roadmap>.csv and .md (device, versions, date, settings in the header).

python -m roadmap.bench --loader: the data loaders instead (see `loaders`), written to loader_<cpu|gpu>.csv/.md.
python -m roadmap.bench --profile [--steps ...] [--scale cifar ...]: where the training step's time goes, by kernel
(CUDA) or op (CPU), and how busy the device is (roadmap.bench.profiling), written to profile_<cpu|gpu>_<scale>*.
python -m roadmap.bench --variants [--budget SECONDS]: the training step under every speed variant worth trying, in
one call of bounded time (roadmap.bench.variants), written to variants_<cpu|gpu>.csv/.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import torch
import torchvision

from roadmap.errors import ConfigError, OneLineParser
from roadmap.nets.model import RoadmapNet, gmacs, num_params

# torchvision's models and the roadmap steps that are the same network
REFERENCES = {"convnext_t": {"resnet50": "resnet50", "convnext_tiny": "separate_downsampling"},
              "convnext_b": {"convnext_base": "separate_downsampling"},
              "bag_of_tricks": {"resnet50": "resnet_b"}}
_COMPILED: dict[int, torch.nn.Module] = {}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "4090": 165.0}


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    """Dense bf16 peak of the GPU, from --peak-tflops or by its name; None on CPU or for an unknown GPU."""
    if given or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} CPU ({torch.get_num_threads()} threads)"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or the machine type where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sync(device) -> None:
    """Wait for the device's queued work (a no-op on CPU): what every timing here does before reading the clock."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timings(fn, device, warmup: int, iters: int) -> tuple[float, float]:
    """(wall seconds of the warmup runs, median seconds of fn() over iters timed runs after them). The warmup time
    holds what first calls cost: torch.compile's compilation, CUDA graph capture, cuDNN autotuning."""
    t = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync(device)
    warm = time.perf_counter() - t
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return warm, statistics.median(times)


def timed(fn, device, warmup: int, iters: int) -> float:
    """Median seconds of fn() over iters runs after warmup runs."""
    return timings(fn, device, warmup, iters)[1]


def activation_bytes(model, x) -> int:
    """Bytes of the tensors autograd saves for backward during one forward: the activation memory of training."""
    total = 0
    seen = {p.untyped_storage().data_ptr() for p in model.parameters()}  # weights are not activations

    def pack(t):
        nonlocal total
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t.detach()  # t itself, saved in the graph that made it, is a cycle through C++ that gc never frees

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).float().sum()
    return total


def measure(model, *, batch: int, resolution: int, num_classes: int, device, precision: str, channels_last: bool,
            compile_model: bool, warmup: int, iters: int) -> dict:
    """Training and inference throughput and peak memory of one model (compiled once when compile_model)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    net = model
    if compile_model:  # compiled once per model: later rounds reuse the compiled graphs
        if id(model) not in _COMPILED:
            _COMPILED[id(model)] = torch.compile(model)
        net = _COMPILED[id(model)]
    x = torch.randn(batch, 3, resolution, resolution, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, num_classes, (batch,), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = nullcontext() if precision == "fp32" else torch.autocast(device.type, dtype=torch.bfloat16)

    def train_step():
        with autocast:
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad(), autocast:
            model(x)  # eager: compiling an inference graph too would double the compile time

    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_s = timed(train_step, device, warmup, iters)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:  # weights, grads, two AdamW moments, and the activations saved for backward
        with autocast:
            peak = 4 * sum(p.numel() * p.element_size() for p in model.parameters()) + activation_bytes(model, x)
    model.eval()
    infer_s = timed(infer, device, warmup, iters)
    opt.zero_grad(set_to_none=True)
    return {"train_step_ms": 1000 * train_s, "train_img_s": batch / train_s, "infer_img_s": batch / infer_s,
            "peak_mem_mb": peak / 2**20}


# batch per scale and device type when the scale's own batch does not suit one device: the paper's global 4096 at
# 224px is 128 on one GPU (as `make bench`), and CPUs get the bench's small CPU batches
DEVICE_BATCH = {("imagenet", "cuda"): 128, ("imagenet", "cpu"): 8, ("cifar", "cpu"): 64}


@dataclasses.dataclass
class Setting:
    """A step's network at a scale, set up as the trainer sets it up on this device (precision, memory format, the
    recipe's loss and optimizer), with random data of the scale's shape."""
    step: str
    scale: str
    model_cfg: object  # ModelConfig: the network the trainer would train (the scale's width, classes, drop path)
    recipe: object  # the run's recipe (optimizer, loss)
    global_batch: int  # the scale's batch, which the recipe's lr scales with
    device: torch.device
    precision: str  # bf16, fp16 or fp32, as the trainer resolves train.precision on this device
    channels_last: bool  # as the trainer resolves train.channels_last (auto: on for CUDA)
    batch: int
    resolution: int
    num_classes: int


def trainer_setting(step: str, scale: str, roadmap: str = "convnext_t", device=None, batch: int | None = None
                    ) -> Setting:
    """The trainer's setting of `step` at `scale` (its own resolution-independent checks: train.check)."""
    from roadmap.config import compose
    from roadmap.train.trainer import check

    device = device_of(device)
    shape = compose([f"+step={step}", f"scale={scale}", f"roadmap={roadmap}"])
    cfg = compose([f"+step={step}", f"scale={scale}", f"roadmap={roadmap}", "data=synthetic",
                   f"data.resolution={shape.data.resolution}", f"data.num_classes={shape.data.num_classes}",
                   f"train.device={device.type}"])
    run = check(cfg)
    recipe = run.settings.recipe
    batch = batch or DEVICE_BATCH.get((scale, device.type), cfg.train.batch_size)
    return Setting(step, scale, run.model_cfg, recipe, cfg.train.batch_size, run.rt.device, run.precision,
                   bool(run.channels_last), batch, cfg.data.resolution, cfg.data.num_classes)


def trainer_step(model, s: Setting, *, channels_last: bool | None = None, compile_mode: str | None = None,
                 annotate: bool = False):
    """A function that runs one training step of `model` as the trainer's loop does: forward under the trainer's
    autocast, the recipe's loss, backward (loss scaling for fp16), the recipe's optimizer step; on one fixed random
    batch already on the device (the data loader is measured apart: `--loader`). compile_mode: None (eager),
    "default" or "reduce-overhead" (torch.compile with CUDA graphs). annotate: mark the forward, backward and
    optimizer phases for torch.profiler."""
    device = s.device
    cl = s.channels_last if channels_last is None else channels_last
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = model.to(device, memory_format=fmt).train()
    net = model
    if compile_mode is not None:
        net = torch.compile(model, mode=None if compile_mode == "default" else compile_mode)
    from roadmap.train import recipe as recipe_lib

    from roadmap.train.step import eager_step

    opt = recipe_lib.optimizer(model, s.recipe, s.global_batch)
    scaler = torch.amp.GradScaler(device.type, enabled=s.precision == "fp16")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(s.precision)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(s.batch, model.config.in_channels if hasattr(model, "config") else 3, s.resolution,
                    s.resolution, generator=g).to(device).contiguous(memory_format=fmt)
    y = torch.randint(0, s.num_classes, (s.batch,), generator=g).to(device)
    train = eager_step(net, recipe_lib.loss_fn(s.recipe), opt, scaler, autocast, s.recipe.grad_clip,
                       list(model.parameters()), phase=torch.profiler.record_function if annotate else None)
    graphs = compile_mode == "reduce-overhead"

    def step():
        if graphs:  # a new iteration: the previous one's graph outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        train(x, y)

    return step


def trainer_overhead(step: str, scale: str, steps_per_epoch: int = 60) -> dict:
    """End-to-end img/s of the trainer (data on the device, augmentation, logging) vs the model-only img/s of the same
    network, batch and precision, on random data of the scale's shape."""
    import tempfile

    from roadmap.config import compose, model_config
    from roadmap.train.trainer import train

    shape = compose([f"+step={step}", f"scale={scale}"])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose([f"+step={step}", f"scale={scale}", "data=synthetic", f"data.resolution={shape.data.resolution}",
                       f"data.num_classes={shape.data.num_classes}", f"runs_root={tmp}", "train.epochs=1",
                       f"data.train_size={steps_per_epoch * shape.train.batch_size}",
                       f"train.max_steps_per_epoch={steps_per_epoch}", "train.progress=false",
                       "eval.robustness=false"])
        summary = train(cfg)
    device = torch.device(summary["device"])
    torch.manual_seed(0)
    model = RoadmapNet(model_config(cfg))
    model_only = measure(model, batch=cfg.train.batch_size, resolution=cfg.data.resolution,
                         num_classes=cfg.data.num_classes, device=device, precision=summary["precision"],
                         channels_last=device.type == "cuda" or bool(cfg.train.channels_last), compile_model=False,
                         warmup=min(3, steps_per_epoch), iters=max(1, steps_per_epoch // 2))
    return {"step": step, "scale": scale, "steps": steps_per_epoch, "trainer_img_s": summary["img_s"],
            "model_img_s": model_only["train_img_s"], "ratio": summary["img_s"] / model_only["train_img_s"]}


def run(roadmap="convnext_t", batch=8, resolution=224, precision="fp32", channels_last=False, compile_modes=(False,),
        warmup=2, iters=5, cifar_batch=64, cifar_epochs=100, device=None, only=None, trainer=True,
        rounds=3, peak=None, trainer_steps=60) -> dict:
    """Every step of the roadmap (or those in `only`) and torchvision's models measured on this device:
    {"meta": the settings and the summary numbers, "rows": a row per step and reference model}."""
    from roadmap.config import load_roadmap

    device = device_of(device)
    torch.set_flush_denormal(True)
    settings = dict(batch=batch, resolution=resolution, num_classes=1000, device=device, precision=precision,
                    channels_last=channels_last, compile_model=False, warmup=warmup, iters=iters)
    steps = load_roadmap(roadmap).steps
    rows = _step_rows(steps, roadmap, settings, cifar_batch, only)
    _reference_rows(rows, roadmap, settings, compile_modes, rounds, only)
    peak = peak_tflops(device, peak)
    if peak:  # model FLOP utilisation: 3 x forward FLOPs (fwd + bwd) per image at the measured rate
        for r in rows:
            r["mfu"] = 6 * r["gmacs"] * (resolution / 224) ** 2 * 1e9 * r["train_img_s"] / (peak * 1e12)
    roadmap_rows = [r for r in rows if r["model"] == "roadmap" and "cifar_img_s" in r]
    sweep_hours = sum(cifar_epochs * 50_000 / r["cifar_img_s"] for r in roadmap_rows) / 3600
    overhead = None
    if trainer:
        overhead = trainer_overhead(steps[-1].name, "cifar" if device.type == "cuda" else "embedded", trainer_steps)
    meta = {"device": device_name(device), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "date": datetime.date.today().isoformat(), "roadmap": roadmap, "steps": len(steps), "batch": batch,
            "resolution": resolution, "precision": precision, "channels_last": channels_last,
            "compile": "/".join("on" if c else "off" for c in compile_modes), "cifar_batch": cifar_batch,
            "cifar_sweep_hours": sweep_hours, "trainer_overhead": overhead, "peak_tflops": peak}
    return {"meta": meta, "rows": rows}


def _step_rows(steps, roadmap: str, settings: dict, cifar_batch: int, only) -> list[dict]:
    """A row per step, eager: params, GMACs, `measure`'s numbers and the training img/s of the step's network at the
    cifar scale (at cifar_batch); a network several steps share is measured once."""
    from roadmap.config import compose, step_model_config

    cifar = compose([f"+step={steps[-1].name}", "scale=cifar", f"roadmap={roadmap}"])
    cifar_settings = dict(settings, batch=cifar_batch, resolution=cifar.data.resolution,
                          num_classes=cifar.data.num_classes)
    rows, cache = [], {}
    for s in steps:
        if only and s.name not in only:
            continue
        cfg = step_model_config(s.name, roadmap)
        if cfg not in cache:
            torch.manual_seed(0)
            model = RoadmapNet(cfg)
            row = {"params": num_params(model), "gmacs": round(gmacs(model), 3)}
            row.update(measure(model, **settings))
            small = RoadmapNet(dataclasses.replace(cfg, num_classes=cifar.data.num_classes,
                                                   width_multiplier=cifar.model.width_multiplier))
            row["cifar_img_s"] = measure(small, **cifar_settings)["train_img_s"]
            cache[cfg] = row
        rows.append({"step": s.name, "model": "roadmap", "compile": False, **cache[cfg]})
        print(f"{s.name:<24} {rows[-1]['train_img_s']:8.1f} train img/s {rows[-1]['infer_img_s']:8.1f} "
              f"infer img/s  {rows[-1]['peak_mem_mb']:8.0f} MB", flush=True)
    return rows


def _reference_rows(rows: list[dict], roadmap: str, settings: dict, compile_modes, rounds: int, only) -> None:
    """Add to `rows` torchvision's models of the roadmap, each measured against the step that is the same network,
    eager and/or compiled: a row per torchvision model (and per compiled step), with the step time ratio, which the
    eager step's own row gets too."""
    from roadmap.config import step_model_config

    for tv_name, ours in REFERENCES.get(roadmap, {}).items():
        if only and ours not in only:
            continue
        torch.manual_seed(0)
        reference = getattr(torchvision.models, tv_name)()
        mine = RoadmapNet(step_model_config(ours, roadmap))
        for compiled in compile_modes:
            ratios, theirs, mine_m = _alternate(reference, mine, dict(settings, compile_model=compiled), rounds)
            ratio = statistics.median(ratios)
            for model, name, net, m in (("torchvision", f"torchvision {tv_name}", reference, theirs),
                                        ("roadmap", ours, mine, mine_m)):
                if model == "roadmap" and not compiled:
                    next(r for r in rows if r["step"] == ours and not r["compile"])["ratio_ours_to_torchvision"] = ratio
                    continue
                rows.append({"step": name, "model": model, "compile": compiled, "params": num_params(net),
                             "gmacs": round(gmacs(net), 3), **m, "ratio_ours_to_torchvision": ratio})
            print(f"{ours} vs torchvision {tv_name}{' (compiled)' if compiled else ''}: step time ratio {ratio:.3f} "
                  f"(median of {rounds} alternating rounds: {', '.join(f'{r:.3f}' for r in ratios)})", flush=True)


def _alternate(reference, mine, settings: dict, rounds: int) -> tuple[list[float], dict, dict]:
    """Measure the two models in turn for `rounds` rounds, so both see the same machine state: (our step time over
    theirs in each round, their last measurement, ours)."""
    ratios, theirs, ours = [], None, None
    for _ in range(rounds):
        theirs = measure(reference, **settings)
        ours = measure(mine, **settings)
        ratios.append(ours["train_step_ms"] / theirs["train_step_ms"])
    return ratios, theirs, ours


def write(result: dict, out: Path) -> list[Path]:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    meta, df = result["meta"], pd.DataFrame(result["rows"])
    tag = "gpu" if "CPU" not in meta["device"] else "cpu"
    stem = out / f"bench_{tag}_{meta['roadmap']}{'_compiled' if meta['compile'] == 'on' else ''}"
    df.to_csv(stem.with_suffix(".csv"), index=False)
    lines = [f"# Benchmark: {meta['roadmap']} on {meta['device']}", "",
             f"torch {meta['torch']}, torchvision {meta['torchvision']}, {meta['date']}; batch {meta['batch']} at "
             f"{meta['resolution']}px, {meta['precision']}, channels_last={meta['channels_last']}, "
             f"compile={meta['compile']} (the training step of the endpoints and torchvision's models; inference "
             f"is eager). Training = forward + backward + AdamW step; peak memory is measured on "
             f"GPU, estimated on CPU (weights, grads, AdamW state, saved activations).", "",
             "| step | params | GMACs | train ms/step | train img/s | infer img/s | peak MB | cifar-scale img/s "
             "| ours / torchvision |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        ratio = r.get("ratio_ours_to_torchvision")
        cifar = r.get("cifar_img_s")
        name = f"{r['step']} (compiled)" if r.get("compile") else r["step"]
        lines.append(f"| {name} | {r['params']:,} | {r['gmacs']:.3f} | {r['train_step_ms']:.1f} | "
                     f"{r['train_img_s']:.1f} | {r['infer_img_s']:.1f} | {r['peak_mem_mb']:.0f} | "
                     f"{'' if cifar is None or cifar != cifar else f'{cifar:.0f}'} | "
                     f"{'' if ratio is None or ratio != ratio else f'{ratio:.3f}'} |")
    measured = sum(1 for r in result["rows"] if "cifar_img_s" in r)
    which = "whole cifar-scale roadmap sweep" if measured == meta["steps"] else \
        f"cifar-scale sweep of the {measured} measured steps (of {meta['steps']})"
    lines += ["", f"Estimated wall time of the {which} ({measured} steps, 100 epochs of 50k images, from the "
                  f"cifar-scale img/s at batch {meta['cifar_batch']}): **{meta['cifar_sweep_hours']:.1f} h** on this "
                  f"device."]
    if meta["peak_tflops"]:
        mfu = {(r["step"], bool(r.get("compile"))): r["mfu"] for r in result["rows"]}
        lines += ["", f"Model FLOP utilisation against a dense bf16 peak of {meta['peak_tflops']:.0f} TFLOP/s: "
                      + ", ".join(f"{k}{' (compiled)' if c else ''} {100 * v:.1f}%" for (k, c), v in mfu.items()
                                  if k in ("separate_downsampling", "torchvision convnext_tiny", "resnet50",
                                           "torchvision resnet50"))]
    if meta["trainer_overhead"]:
        o = meta["trainer_overhead"]
        lines += ["", f"Trainer end-to-end on the {o['scale']} scale ({o['step']}, random data of that shape, "
                      f"{o['steps']} steps): "
                      f"{o['trainer_img_s']:.0f} img/s vs {o['model_img_s']:.0f} img/s model-only: "
                      f"**{o['ratio']:.2f}x** (target >= 0.9)."]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return [stem.with_suffix(".csv"), stem.with_suffix(".md")]


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    try:
        check_arguments(a)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    gpu = device_of(a.device).type == "cuda"
    if a.profile or a.variants:
        paths = _profiles_and_variants(a, gpu)
    elif a.loader:
        from roadmap.bench.loaders import loaders, write_loaders

        paths = write_loaders(loaders(a.device, quick=a.quick), a.out)
    else:
        paths = write(_run(a, gpu), a.out)
    for path in paths:
        print(path)
    return 0


# --option: (least value, why); every other option is checked by argparse's type or choices
AT_LEAST = {"batch": (2, "BatchNorm trains on 2 images or more"), "cifar_batch": (2, "BatchNorm trains on 2 images or more"),
            "resolution": (32, "the networks downsample 32x"), "iters": (1, ""), "warmup": (0, ""),
            "trainer_steps": (1, ""), "rounds": (1, ""), "top": (1, ""), "budget": (0, "0: plan only")}
ABOVE_ZERO = ("peak_tflops", "compile_estimate")


def check_arguments(a: argparse.Namespace) -> None:
    """A one-line ConfigError for an argument the benchmark would meet only later (a traceback, or a file written
    with nothing in it): the roadmap and its --steps, --device, --scale, --only-variants, the numbers, --out."""
    from roadmap.config import CONF_DIR, load_roadmap

    road = load_roadmap(a.roadmap)
    for step in a.steps or ():
        if road.get(step) is None:
            raise ConfigError(f"--steps {step}: not a step of roadmap {road.name}; its steps: {', '.join(road.names())}")
    device_of(a.device)
    scales = sorted(p.stem for p in (CONF_DIR / "scale").glob("*.yaml"))
    for scale in a.scale or ():
        if scale not in scales:
            raise ConfigError(f"--scale {scale}: one of {', '.join(scales)}")
    if a.only_variants:
        from roadmap.bench.variants import BY_NAME

        for name in a.only_variants:
            if name not in BY_NAME:
                raise ConfigError(f"--only-variants {name}: one of {', '.join(BY_NAME)}")
    for key, (least, why) in AT_LEAST.items():
        if getattr(a, key) is not None and getattr(a, key) < least:
            raise ConfigError(f"--{key.replace('_', '-')} {getattr(a, key)}: must be at least {least}"
                              + (f" ({why})" if why else ""))
    for key in ABOVE_ZERO:
        if getattr(a, key) is not None and not getattr(a, key) > 0:
            raise ConfigError(f"--{key.replace('_', '-')} {getattr(a, key)}: must be a number > 0")
    check_out(a.out)


def device_of(name: str | None) -> torch.device:
    """--device as a device torch has here (default: cuda where it sees a GPU, else cpu), or a one-line ConfigError."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    have = {"cpu": 1, "cuda": torch.cuda.device_count(), "mps": int(torch.backends.mps.is_available())}
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in have:
        raise ConfigError(f"--device {name}: one of cpu, cuda, cuda:<index>, mps")
    if (device.index or 0) >= have[device.type]:
        raise ConfigError(f"--device {name}: torch sees {have[device.type] or 'no'} {device.type.upper()} "
                          f"device{'' if have[device.type] == 1 else 's'} here")
    return device


def check_out(out: Path) -> None:
    """--out must be a folder that is or can be made and written."""
    existing = next(p for p in (out.absolute(), *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {existing} cannot be written")


def _parser() -> argparse.ArgumentParser:
    """The command line (the module's docstring says what each mode does)."""
    p = OneLineParser(prog="python -m roadmap.bench", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--roadmap", default="convnext_t", help="convnext_t (default), convnext_b, bag_of_tricks, ...")
    p.add_argument("--batch", type=int, default=None,
                   help="default: 8 on CPU, 128 on GPU; --profile/--variants: the batch at every --scale (default: "
                        "the scale's, 128 at imagenet on GPU; on CPU 64 at cifar, 8 at imagenet)")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--precision", default=None, choices=("fp32", "bf16"), help="default: fp32 on CPU, bf16 on GPU")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="default: on for GPU")
    p.add_argument("--compile", choices=("off", "on", "both"), default="off",
                   help="torch.compile the endpoints and torchvision's models (both: measure each way); "
                        "--profile: on profiles the compiled step")
    _mode_arguments(p)
    p.add_argument("--iters", type=int, default=None,
                   help="timed iterations (default: 3 on CPU, 20 on GPU; --profile: profiled steps, 2 on CPU, 3 on "
                        "GPU; --variants: 2 on CPU, 6 on GPU)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed iterations first (default: 1 on CPU, 5 on GPU; --profile/--variants: 1 on CPU, 3 on "
                        "GPU)")
    p.add_argument("--cifar-batch", type=int, default=None, help="default: 64 on CPU, 512 on GPU")
    p.add_argument("--steps", nargs="*", default=None,
                   help="only these steps (default: all; --profile: the roadmap's baseline and endpoint; --variants: "
                        "those and kernel_7, kernel_9, kernel_11)")
    p.add_argument("--no-trainer", action="store_true", help="skip the embedded-scale trainer overhead check")
    p.add_argument("--trainer-steps", type=int, default=60, help="optimizer steps of the trainer overhead check")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of ours vs torchvision")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="dense bf16 peak of the GPU for the FLOP utilisation (known: H100, H200, A100, L40S, ...)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=Path("benchmarks"))
    return p


def _mode_arguments(p: argparse.ArgumentParser) -> None:
    """The other modes (--loader, --profile, --variants) and their own options."""
    p.add_argument("--loader", action="store_true", help="benchmark the data loaders instead (loader_*.csv/.md)")
    p.add_argument("--profile", action="store_true",
                   help="profile the training step of --steps at --scale instead (profile_*.csv/.md; "
                        "roadmap.bench.profiling)")
    p.add_argument("--variants", action="store_true",
                   help="time the training step of --steps at each --scale under every speed variant worth trying "
                        "(eager, cuDNN autotuning, depthwise conv layout and precision, torch.compile, CUDA graphs) "
                        "within --budget (variants_*.csv/.md; roadmap.bench.variants)")
    p.add_argument("--scale", nargs="+", default=None,
                   help="--profile/--variants: scales to run at (cifar, embedded, imagenet = 224px, imagenette); "
                        "default: cifar for --profile, cifar imagenet for --variants")
    p.add_argument("--budget", type=float, default=200.0,
                   help="--variants: seconds of measuring in all; later measurements are marked not measured")
    p.add_argument("--only-variants", nargs="+", default=None, help="--variants: only these variants (and eager)")
    p.add_argument("--compile-estimate", type=float, default=None,
                   help="--variants: seconds a compile is expected to take until one has been timed; a compile "
                        "starts only when the budget left covers it (default: 40 on GPU, 90 on CPU)")
    p.add_argument("--top", type=int, default=15, help="--profile: rows per step in the Markdown summary")
    p.add_argument("--quick", action="store_true", help="--loader: a few batches only (for tests)")


def _profiles_and_variants(a: argparse.Namespace, gpu: bool) -> Iterator[Path]:
    """--profile and/or --variants: the paths written, as they are written."""
    from roadmap.config import load_roadmap

    road = load_roadmap(a.roadmap)
    ends = [road.baseline, road.endpoint.name]
    if a.profile:
        from roadmap.bench.profiling import run_profiles

        steps = a.steps or ends
        for scale in a.scale or ["cifar"]:
            yield from run_profiles(steps, scale, a.roadmap, a.device, a.batch,
                                    a.warmup if a.warmup is not None else (3 if gpu else 1),
                                    a.iters if a.iters is not None else (3 if gpu else 2),
                                    "default" if a.compile == "on" else None, a.out, a.top)
    if a.variants:
        from roadmap.bench.variants import KERNEL_STEPS, floor_tflops, run_variants

        steps = a.steps or ends + [k for k in KERNEL_STEPS if road.get(k) is not None]
        yield from run_variants(steps, a.scale or ["cifar", "imagenet"], a.roadmap, a.device, a.batch,
                                a.warmup if a.warmup is not None else (3 if gpu else 1),
                                a.iters if a.iters is not None else (6 if gpu else 2), a.budget,
                                a.only_variants, a.compile_estimate or (40.0 if gpu else 90.0), a.out,
                                floor_tflops(a.device, a.peak_tflops))


def _run(a: argparse.Namespace, gpu: bool) -> dict:
    """The benchmark (`run`) with the arguments' defaults for this device."""
    return run(roadmap=a.roadmap, batch=a.batch or (128 if gpu else 8), resolution=a.resolution,
               precision=a.precision or ("bf16" if gpu else "fp32"),
               channels_last=gpu if a.channels_last is None else a.channels_last,
               compile_modes={"off": (False,), "on": (True,), "both": (False, True)}[a.compile],
               warmup=a.warmup if a.warmup is not None else (5 if gpu else 1),
               iters=a.iters if a.iters is not None else (20 if gpu else 3),
               cifar_batch=a.cifar_batch or (512 if gpu else 64),
               device=a.device, only=a.steps, trainer=not a.no_trainer, rounds=a.rounds, peak=a.peak_tflops,
               trainer_steps=a.trainer_steps)
