"""python -m roadmap.bench --variants [--budget SECONDS]: the training step under every speed variant worth trying, in
one call of bounded time (made for a GPU lent for a few minutes).

For every step asked (default: the roadmap's baseline and endpoint, kernel_7, kernel_9, kernel_11) at every scale
asked (default: cifar = 32px, batch 512, full width; imagenet = 224px, batch 128), the training step as the trainer
runs it (roadmap.bench.trainer_step) is timed under each variant of VARIANTS: the trainer's own eager setting, cuDNN
autotuning, the depthwise conv on NCHW input and/or in fp32 (a wrapper around the built model's depthwise convs: the
design switches stay as they are), the whole model in the other memory format, torch.compile, torch.compile with CUDA
graphs, and compile on top of the fastest eager variant of the row. A variant that does not exist on this device or
for this network (cuDNN flags on a CPU, a depthwise variant of ResNet-50, fp32 depthwise when all is fp32) is listed as
skipped, with the reason.

Eager variants run first, then the compiled ones (endpoints first, the cifar scale first); a measurement starts only
while the budget lasts, and a compile only when the budget left covers the longest compile so far (before the first,
--compile-estimate). Rows the budget did not reach are listed as not measured. The table is rewritten after every
measurement (variants_<cpu|gpu>.csv and .md in --out), so a run cut short still leaves what it measured.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import gc
import time
from pathlib import Path

import pandas as pd
import torch
import torchvision
from torch import nn
from torch._dynamo.utils import counters

from roadmap.bench.timing import device_name, peak_tflops, timings
from roadmap.bench.trainer_step import Setting, trainer_setting, trainer_step
from roadmap.config import load_roadmap
from roadmap.nets.model import RoadmapNet, gmacs
from roadmap.tables import markdown
from roadmap.train import AUTOCAST_DTYPES

KERNEL_STEPS = ("kernel_7", "kernel_9", "kernel_11")
MATMUL_BF16_TFLOPS = {"H200": 790.0, "H100": 790.0}  # measured on an 8192^3 bf16 product (DESIGN.md): the floor's rate
COLUMNS = ("step", "scale", "resolution", "batch", "variant", "description", "status", "ms_per_step", "img_s",
           "ratio_to_eager", "compile_s", "floor_ms", "note")


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    description: str
    compile: str | None = None  # None: eager; "default" or "reduce-overhead" (torch.compile with CUDA graphs)
    dw_nchw: bool = False  # the depthwise conv on NCHW input (the rest of the model channels_last)
    dw_fp32: bool = False  # the depthwise conv in fp32 (autocast off around it)
    cudnn_benchmark: bool = False  # torch.backends.cudnn.benchmark = True
    other_layout: bool = False  # the whole model in the other memory format than the trainer's
    on_best: bool = False  # compiled, on top of the fastest eager variant of its row


VARIANTS = (
    Variant("eager", "the trainer's setting on this device (eager)"),
    Variant("cudnn_benchmark", "torch.backends.cudnn.benchmark = True", cudnn_benchmark=True),
    Variant("dw_nchw", "depthwise conv on NCHW input (.contiguous() around it), the rest as the trainer's",
            dw_nchw=True),
    Variant("dw_fp32", "depthwise conv in fp32 (autocast off around it), the rest as the trainer's", dw_fp32=True),
    Variant("dw_nchw_fp32", "depthwise conv on NCHW input and in fp32", dw_nchw=True, dw_fp32=True),
    Variant("other_layout", "the whole model in the other memory format", other_layout=True),
    Variant("compile", "torch.compile (default mode)", compile="default"),
    Variant("compile_cudagraphs", "torch.compile(mode='reduce-overhead'): inductor + CUDA graphs",
            compile="reduce-overhead"),
    Variant("compile_best", "compiled (with CUDA graphs on CUDA) on top of the fastest eager variant of the row",
            on_best=True),
)
BY_NAME = {v.name: v for v in VARIANTS}


class DepthwiseAs(nn.Module):
    """A depthwise conv run on NCHW (contiguous) input and/or in fp32 (autocast off around it, for a model that runs
    under autocast to `low`), handing its output back in the layout and dtype the rest of the network got before:
    only the conv itself changes."""

    def __init__(self, conv: nn.Conv2d, nchw: bool, low: torch.dtype | None):
        super().__init__()
        self.conv, self.nchw, self.low = conv, nchw, low

    def forward(self, x):
        restore = self.nchw and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        if self.nchw:
            x = x.contiguous()
        if self.low is not None:
            with torch.autocast(x.device.type, enabled=False):
                y = self.conv(x.float()).to(self.low)
        else:
            y = self.conv(x)
        return y.contiguous(memory_format=torch.channels_last) if restore else y


def is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels


def wrap_depthwise(model: nn.Module, nchw: bool, low: torch.dtype | None) -> int:
    """Replace every depthwise nn.Conv2d of a built model by DepthwiseAs (same parameters); how many were replaced.
    low: the autocast dtype the model runs in, to run the depthwise convs in fp32 instead (None: as they are)."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if is_depthwise(child):
                setattr(parent, name, DepthwiseAs(child, nchw, low))
                count += 1
    return count


def floor_tflops(device, given: float | None) -> float | None:
    """The rate of the FLOP floor: --peak-tflops, else the measured matrix rate of a known GPU, else its peak."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if given or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in MATMUL_BF16_TFLOPS.items() if k in name), None) or peak_tflops(device, None)


def skip_reason(v: Variant, s: Setting) -> str | None:
    """Why a variant does not exist for this network on this device (None: it does)."""
    cuda = s.device.type == "cuda"
    has_dw = s.model_cfg.spatial_conv == "depthwise"
    if v.cudnn_benchmark and not cuda:
        return f"no cuDNN on {s.device.type}: the flag is a no-op"
    if (v.dw_nchw or v.dw_fp32) and not has_dw:
        return "no depthwise conv in this network"
    if v.dw_nchw and not s.channels_last:
        return "the model runs NCHW on this device already"
    if v.dw_fp32 and s.precision == "fp32":
        return "the model runs in fp32 on this device already"
    if v.compile == "reduce-overhead" and not cuda:
        return "CUDA graphs need a CUDA device"
    return None


@dataclasses.dataclass
class Row:
    setting: Setting
    variant: Variant
    status: str = "planned"
    ms: float | None = None
    compile_s: float | None = None
    note: str = ""
    applied: Variant | None = None  # what compile_best ran

    def record(self, eager_ms: float | None, gmacs_img: float | None, peak: float | None) -> dict:
        s, v = self.setting, self.variant
        floor = (6 * gmacs_img * 1e9 * s.batch / (peak * 1e12) * 1000) if peak and gmacs_img else None
        status = self.status if self.status != "planned" else "not measured: not reached when this file was written"
        return {"step": s.step, "scale": s.scale, "resolution": s.resolution, "batch": s.batch, "variant": v.name,
                "description": self.applied.description if self.applied else v.description, "status": status,
                "ms_per_step": self.ms, "img_s": s.batch / self.ms * 1000 if self.ms else None,
                "ratio_to_eager": self.ms / eager_ms if self.ms and eager_ms else None,
                "compile_s": self.compile_s, "floor_ms": floor, "note": self.note}


def _effective(row: Row, rows: list[Row]) -> Variant | str:
    """The variant a row runs: itself, or for compile_best the fastest measured eager variant of its row, compiled
    (CUDA graphs on CUDA); a string says why it cannot run."""
    v = row.variant
    if not v.on_best:
        return v
    same = [r for r in rows if r.setting is row.setting and r.variant.compile is None and not r.variant.on_best]
    measured = [r for r in same if r.ms is not None]
    if not any(r.variant.name == "eager" for r in measured):
        return "not measured: the eager rows of this step were not measured"
    best = min(measured, key=lambda r: r.ms)
    if best.variant.name == "eager":
        return "skipped: the trainer's eager setting is the fastest eager variant (see compile rows)"
    mode = "reduce-overhead" if row.setting.device.type == "cuda" else "default"
    return dataclasses.replace(best.variant, name=v.name, compile=mode, on_best=False,
                               description=f"{best.variant.name} + torch.compile"
                                           f"{'(mode=reduce-overhead)' if mode != 'default' else ''}")


def measure_variant(base: nn.Module, s: Setting, v: Variant, warmup: int, iters: int) -> tuple[float, float | None,
                                                                                                 str]:
    """(median seconds per step, compile seconds or None, note) of one variant."""
    model = copy.deepcopy(base)
    note = []
    if v.dw_nchw or v.dw_fp32:
        low = AUTOCAST_DTYPES.get(s.precision) if v.dw_fp32 else None
        note.append(f"{wrap_depthwise(model, v.dw_nchw, low)} depthwise convs wrapped")
    if v.compile:
        torch._dynamo.reset()
        counters.clear()
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = v.cudnn_benchmark
    fn = None
    try:
        fn = trainer_step(model, s, channels_last=s.channels_last != v.other_layout, compile_mode=v.compile)
        w = max(warmup, 3) if v.compile else warmup  # CUDA graphs: a warm-up run, a recording, then replays
        warm_s, step_s = timings(fn, s.device, w, iters)
        compile_s = max(0.0, warm_s - w * step_s) if v.compile else None
        if v.compile:
            breaks = sum(counters["graph_break"].values())
            skips = sum(counters["inductor"].get(k, 0) for k in ("cudagraph_skips",))
            note += [f"{breaks} graph breaks"] if breaks else []
            note += [f"CUDA graphs skipped {skips}x (see the log)"] if skips else []
    finally:
        torch.backends.cudnn.benchmark = previous
        del model, fn  # free the device memory before the next variant
        if v.compile:
            torch._dynamo.reset()
        gc.collect()
        if s.device.type == "cuda":
            torch.cuda.empty_cache()
    return step_s, compile_s, "; ".join(note)


def _priority(row: Row, steps: list[str], ends: list[str], scales: list[str]) -> tuple:
    """Measuring order: eager variants in table order, then compiled ones: the endpoint (ConvNeXt), then the
    baseline (ResNet), then the other steps, each at every scale (in the order asked), CUDA graphs before the default
    mode; compile_best last."""
    v, s = row.variant, row.setting
    if v.compile is None and not v.on_best:
        return (0, scales.index(s.scale), steps.index(s.step), VARIANTS.index(v))
    ends_first = ends.index(s.step) if s.step in ends else len(ends) + steps.index(s.step)
    mode = 0 if v.compile == "reduce-overhead" else 1
    return (1, int(v.on_best), ends_first, scales.index(s.scale), mode)


@dataclasses.dataclass(frozen=True)
class VariantsSettings:
    """What `run_variants` times and within which budget (the command line's defaults for a device: cli)."""
    roadmap: str = "convnext_t"
    device: str | None = None  # None: cuda where torch sees a GPU, else cpu
    batch: int | None = None  # None: the scale's batch on this device (trainer_step.DEVICE_BATCH)
    warmup: int = 3  # untimed steps first (at least 3 when compiled)
    iters: int = 6  # timed steps
    budget: float = 200.0  # seconds of measuring in all
    only: tuple[str, ...] | None = None  # only these variants (and eager); None: all
    compile_estimate: float = 40.0  # seconds a compile is expected to take until one has been timed
    out: Path = Path("benchmarks")
    peak: float | None = None  # TFLOP/s of the FLOP floor (floor_tflops); None: no floor


def run_variants(steps, scales, p: VariantsSettings = VariantsSettings()) -> list[Path]:
    """Time every variant (or those in `p.only`) of every step at every scale in measuring order while the budget
    lasts, rewriting the tables after each measurement; the paths of the tables."""
    torch.set_flush_denormal(True)  # as the trainer
    road = load_roadmap(p.roadmap)
    ends = [road.endpoint.name, road.baseline]
    rows = _plan(steps, scales, p.roadmap, p.device, p.batch, p.only)
    meta = _meta(rows, p.roadmap, p.budget, p.warmup, p.iters, p.peak)
    bases, macs = {}, {}
    start = time.perf_counter()
    deadline = start + p.budget
    longest = None
    for row in sorted(rows, key=lambda r: _priority(r, list(steps), ends, list(scales))):
        if row.status != "planned":
            continue
        v = _runnable(row, rows, deadline - time.perf_counter(), p.budget,
                      longest if longest is not None else p.compile_estimate)
        if isinstance(v, str):
            row.status = v
            continue
        _measure_row(row, v, bases, macs, p.warmup, p.iters)
        if row.compile_s is not None:
            longest = max(longest or 0.0, row.compile_s)
        print(_progress(row, rows, deadline - time.perf_counter()), flush=True)
        meta["elapsed"] = time.perf_counter() - start
        paths = write_variants(rows, meta, macs, p.out)
    meta["elapsed"] = time.perf_counter() - start
    paths = write_variants(rows, meta, macs, p.out)
    print("\n".join(_table(rows, macs, meta)))
    return paths


def _plan(steps, scales, roadmap: str, device, batch, only) -> list[Row]:
    """A row per scale, step and variant (those in `only`, and eager), planned or skipped with the reason."""
    unknown = [n for n in (only or []) if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"--only-variants: unknown {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    chosen = [v for v in VARIANTS if v.name == "eager" or not only or v.name in only]
    rows = []
    for scale in scales:
        for step in steps:
            s = trainer_setting(step, scale, roadmap, device, batch)
            for v in chosen:
                why = skip_reason(v, s)
                rows.append(Row(s, v, status=f"skipped: {why}" if why else "planned"))
    return rows


def _meta(rows: list[Row], roadmap: str, budget: float, warmup: int, iters: int, peak: float | None) -> dict:
    """The tables' header: device, versions, date, the settings and each scale's shape."""
    meta = {"device": device_name(rows[0].setting.device), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "date": datetime.date.today().isoformat(), "budget": budget,
            "warmup": warmup, "iters": iters, "roadmap": roadmap, "peak": peak, "scales": {}}
    for r in rows:
        s = r.setting
        meta["scales"].setdefault(s.scale, f"{s.resolution}px, batch {s.batch}, width "
                                           f"x{s.model_cfg.width_multiplier:g}, {s.num_classes} classes, "
                                           f"{s.precision}, channels_last={s.channels_last}")
    return meta


def _runnable(row: Row, rows: list[Row], left: float, budget: float, need: float) -> Variant | str:
    """The variant a planned row runs, or why it is not measured: it cannot run, the budget is spent, or a compile
    (~need seconds: the longest so far, or the estimate) would not fit in the `left` seconds."""
    v = _effective(row, rows)
    if isinstance(v, str):
        return v
    if left <= 0:
        return f"not measured: the budget ({budget:.0f} s) was spent"
    if v.compile and left < need:
        return f"not measured: {left:.0f} s of the budget left, a compile takes ~{need:.0f} s"
    return v


def _measure_row(row: Row, v: Variant, bases: dict, macs: dict, warmup: int, iters: int) -> None:
    """Measure a row running `v`, building its step's network at its scale (and counting its MACs) once; a failure
    (out of memory, a compiler error) goes into the row's status and leaves the others."""
    s = row.setting
    key = (s.step, s.scale)
    try:
        if key not in bases:
            torch.manual_seed(0)
            bases[key] = RoadmapNet(s.model_cfg)
            macs[key] = gmacs(bases[key], s.resolution)
        step_s, compile_s, note = measure_variant(bases[key], s, v, warmup, iters)
        row.ms, row.compile_s, row.note, row.status = 1000 * step_s, compile_s, note, "measured"
        row.applied = v if row.variant.on_best else None
    except Exception as e:
        row.status = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
        if v.compile:
            torch._dynamo.reset()
        if s.device.type == "cuda":
            torch.cuda.empty_cache()


def _progress(row: Row, rows: list[Row], left: float) -> str:
    """The line printed after a row's measurement."""
    s, eager = row.setting, _eager_ms(row, rows)
    return (f"[variants] {s.step} {s.scale} {row.variant.name}: {row.status}"
            + (f", {row.ms:.2f} ms/step, {s.batch / row.ms * 1000:.0f} img/s" if row.ms else "")
            + (f", {row.ms / eager:.2f}x eager" if row.ms and eager else "")
            + (f", compile {row.compile_s:.0f} s" if row.compile_s is not None else "")
            + f"; {left:.0f} s of the budget left")


def _eager_ms(row: Row, rows: list[Row]) -> float | None:
    return next((r.ms for r in rows if r.setting is row.setting and r.variant.name == "eager"), None)


def _records(rows, macs, meta) -> list[dict]:
    return [r.record(_eager_ms(r, rows), macs.get((r.setting.step, r.setting.scale)), meta["peak"]) for r in rows]


def _fmt(x, spec: str) -> str:
    return "" if x is None else format(x, spec)


TABLE_COLUMNS = ("step", "scale", "px", "batch", "variant", "ms/step", "img/s", "vs eager", "compile s", "floor ms",
                 "status")


def _table(rows, macs, meta) -> list[str]:
    return markdown([_cells(r) for r in _records(rows, macs, meta)], TABLE_COLUMNS)


def _cells(r: dict) -> list[str]:
    """A record as the table's cells: the status holds the note; compile_best names what it compiled."""
    status = r["status"] if r["status"] != "measured" else ""
    if r["note"]:
        status = f"{status}; {r['note']}" if status else r["note"]
    name = r["variant"] + (f" ({r['description']})" if r["variant"] == "compile_best" and r["ms_per_step"] else "")
    return [r["step"], r["scale"], str(r["resolution"]), str(r["batch"]), name, _fmt(r["ms_per_step"], ".2f"),
            _fmt(r["img_s"], ".0f"), _fmt(r["ratio_to_eager"], ".3f"), _fmt(r["compile_s"], ".0f"),
            _fmt(r["floor_ms"], ".2f"), status]


def write_variants(rows: list[Row], meta: dict, macs: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    tag = "cpu" if rows[0].setting.device.type == "cpu" else "gpu"
    stem = out / f"variants_{tag}"
    pd.DataFrame(_records(rows, macs, meta), columns=list(COLUMNS)).to_csv(stem.with_suffix(".csv"), index=False,
                                                                          float_format="%.6g")
    counts = {k: sum(r.status.startswith(k) for r in rows) for k in ("measured", "not measured", "skipped", "failed")}
    lines = [f"# Speed variants of the training step on {meta['device']}", "",
             f"torch {meta['torch']}, torchvision {meta['torchvision']}, {meta['date']}; `python -m roadmap.bench "
             f"--variants --budget {meta['budget']:.0f}`: {meta.get('elapsed', 0):.0f} s of measuring; every row is "
             f"the median of {meta['iters']} timed training steps (forward + loss + backward + the recipe's optimizer "
             f"step, as the trainer runs them, on one random batch on the device) after {meta['warmup']} warm-up "
             f"steps (at least 3 when compiled). *vs eager* = ms/step over the eager row's (below 1: faster). "
             f"*compile s* = the warm-up's wall time beyond its steps (compiling, capturing graphs). "
             + (f"*floor* = 6 x MACs x batch at {meta['peak']:.0f} TFLOP/s (the matrix rate of this GPU), the "
                f"step's time if it ran at that rate. " if meta["peak"] else "")
             + f"Rows: {counts['measured']} measured, {counts['not measured']} not measured (budget), "
               f"{counts['skipped']} skipped (no such variant here), {counts['failed']} failed.", "",
             "Scales: " + "; ".join(f"{k}: {v}" for k, v in meta["scales"].items()) + ".", "",
             "Variants: " + "; ".join(f"`{v.name}`: {v.description}" for v in VARIANTS) + ".", "",
             *_table(rows, macs, meta)]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return [stem.with_suffix(".csv"), stem.with_suffix(".md")]
