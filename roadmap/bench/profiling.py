"""python -m roadmap.bench --profile: where a training step's time goes, step by step, on this device.

For every step asked, a few training steps of its network at a scale (forward, backward, optimizer step, set up as the
trainer sets them up on this device: roadmap.bench.trainer_step) run under torch.profiler. Written to --out:

  profile_<cpu|gpu>_<scale>_<step>.csv   every kernel (CUDA) or op (CPU) of the profiled steps: phase (forward,
                                         backward, optimizer), name, the outermost op it ran under, calls and time per
                                         step, share of the step's wall time, the input shapes that took most of it
  profile_<cpu|gpu>_<scale>.csv          per step: ms/step, busy time and fraction, time per phase, the top entry
  profile_<cpu|gpu>_<scale>.md           per step: ms/step without and with the profiler, the device-busy fraction,
                                         the time per phase, and the top kernels/ops

On CUDA the time of a row is device (kernel) time; on CPU it is the op's self CPU time. The busy fraction is the
device time of the profiled steps over their wall time: on a GPU, what is left is time the GPU waited for the host
(kernel launches, Python); on a CPU, time outside any op (Python, the autograd engine, the allocator).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import time
from pathlib import Path

import pandas as pd
import torch
import torchvision
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, schedule

from roadmap.bench.timing import device_name, sync, timed
from roadmap.bench.trainer_step import trainer_setting, trainer_step
from roadmap.nets.model import RoadmapNet, gmacs
from roadmap.tables import markdown

PHASES = ("forward", "backward", "optimizer")
COLUMNS = ("phase", "name", "op", "calls_per_step", "ms_per_step", "total_ms", "share", "shapes", "shapes_share")
SUMMARY = ("step", "scale", "resolution", "batch", "width_multiplier", "precision", "channels_last", "compile", "steps",
           "gmacs", "ms_per_step", "profiled_ms_per_step", "device_ms_per_step", "busy")


def _intervals(events):
    """(start, end, phase) of the phase annotations, by start time."""
    out = []
    for e in events:
        if e.name.startswith("roadmap::"):
            out.append((e.time_range.start, e.time_range.end, e.name.removeprefix("roadmap::")))
    return sorted(out)


def _phase_of(start: float, spans) -> str:
    """The phase whose annotation (on the host) was open when an op started: the backward ops of a CUDA model run on
    autograd's device thread, but within the main thread's `loss.backward()` call."""
    for lo, hi, name in spans:
        if lo <= start <= hi:
            return name
    return "other"


def _is_op(e, annotations: bool = False) -> bool:
    """A host-side op (with annotations: also someone else's annotation, e.g. torch.compile's regions or the
    optimizer's step), but never our phase marks, the profiler's steps or an asynchronous event."""
    if e.device_type != DeviceType.CPU or e.is_async or e.name.startswith(("roadmap::", "ProfilerStep")):
        return False
    return annotations or not getattr(e, "is_user_annotation", False)


def _outermost(e, annotations: bool = False) -> str:
    """The name of the outermost op an event ran under (e.g. aten::conv2d, or the autograd node in backward)."""
    while e.cpu_parent is not None and _is_op(e.cpu_parent, annotations):
        e = e.cpu_parent
    return e.name


def _shapes(e) -> str:
    """The tensor input shapes of an op (recorded with record_shapes), e.g. 256x96x8x8 96x1x7x7 for a depthwise conv."""
    return " ".join("x".join(map(str, s)) for s in (getattr(e, "input_shapes", None) or []) if s)


def _union_us(intervals) -> float:
    """Length of the union of (start, end) intervals: the time a device was busy on any of its streams."""
    total, end = 0.0, float("-inf")
    for lo, hi in sorted(intervals):
        if hi > end:
            total += hi - max(lo, end)
            end = hi
    return total


def summarize(events, cuda: bool, wall_s: float, steps: int) -> tuple[list[dict], float]:
    """Rows (one per phase and kernel/op name, largest first) and the busy time of the profiled steps, in seconds.
    CUDA: every kernel's device time, attributed to the host op that launched it (its phase, its outermost op or
    annotation); kernels no host event claims are rows of phase "other". CPU: every op's self CPU time on the thread
    that ran the steps (annotations are not ops: their own time is the host's overhead, which *busy* leaves out)."""
    events = list(events)
    spans = _intervals(events)
    # (phase, name) -> calls, us, outermost op -> us, input shapes of the (launching) op -> us
    acc = collections.defaultdict(lambda: [0, 0.0, collections.Counter(), collections.Counter()])
    if cuda:
        claimed, claimed_calls = collections.Counter(), collections.Counter()
        for e in events:
            if not _is_op(e, annotations=True):
                continue
            for k in e.kernels:
                row = acc[(_phase_of(e.time_range.start, spans), k.name)]
                row[0] += 1
                row[1] += k.duration
                row[2][_outermost(e, annotations=True)] += k.duration
                row[3][_shapes(e)] += k.duration
                claimed[k.name] += k.duration
                claimed_calls[k.name] += 1
        device = [e for e in events if e.device_type != DeviceType.CPU]
        seen = collections.defaultdict(lambda: [0, 0.0])
        for e in device:
            seen[e.name][0] += 1
            seen[e.name][1] += e.time_range.end - e.time_range.start
        for name, (calls, us) in seen.items():
            rest = us - claimed[name]
            if rest > 1e-3 * us and rest > 1.0:
                row = acc[("other", name)]
                row[0] += max(0, calls - claimed_calls[name])
                row[1] += rest
        busy_us = _union_us((e.time_range.start, e.time_range.end) for e in device)
    else:
        main = collections.Counter(e.thread for e in events if e.name.startswith("roadmap::")).most_common(1)
        thread = main[0][0] if main else None
        for e in events:
            if not _is_op(e) or (thread is not None and e.thread != thread):
                continue
            row = acc[(_phase_of(e.time_range.start, spans), e.name)]
            row[0] += 1
            row[1] += e.self_cpu_time_total
            row[2][_outermost(e)] += e.self_cpu_time_total
            row[3][_shapes(e)] += e.self_cpu_time_total
        busy_us = sum(r[1] for r in acc.values())
    rows = []
    for (phase, name), (calls, us, ops, shapes) in acc.items():
        top_shapes, shapes_us = shapes.most_common(1)[0] if shapes else ("", 0.0)
        rows.append({"phase": phase, "name": name, "op": ops.most_common(1)[0][0] if ops else "",
                     "calls_per_step": calls / steps, "ms_per_step": us / 1000 / steps, "total_ms": us / 1000,
                     "share": us / 1e6 / wall_s, "shapes": top_shapes, "shapes_share": shapes_us / us if us else 0.0})
    rows.sort(key=lambda r: -r["total_ms"])
    return rows, busy_us / 1e6


@dataclasses.dataclass(frozen=True)
class ProfileSettings:
    """How `run_profiles` profiles each step (the command line's defaults for a device: cli)."""
    roadmap: str = "convnext_t"
    device: str | None = None  # None: cuda where torch sees a GPU, else cpu
    batch: int | None = None  # None: the scale's batch on this device (trainer_step.DEVICE_BATCH)
    warmup: int = 3  # untimed steps before the unprofiled timing
    iters: int = 3  # profiled steps (and timed steps of the unprofiled timing)
    compile_mode: str | None = None  # None: eager; "default": torch.compile
    out: Path = Path("benchmarks")
    top: int = 15  # rows per step in the Markdown summary


def profile_step(step: str, scale: str, p: ProfileSettings = ProfileSettings()) -> dict:
    """Profile `p.iters` training steps of a step's network at a scale, after `p.warmup` steps and an unprofiled
    timing."""
    s = trainer_setting(step, scale, p.roadmap, p.device, p.batch)
    torch.set_flush_denormal(True)  # as the trainer
    torch.manual_seed(0)
    model = RoadmapNet(s.model_cfg)
    macs = gmacs(model, s.resolution)
    fn = trainer_step(model, s, compile_mode=p.compile_mode, annotate=True)
    plain_s = timed(fn, s.device, max(p.warmup, 3 if p.compile_mode else 1), p.iters)  # compiles, warms, times
    events, wall_s = _profiled(fn, s.device, p.iters)
    rows, device_s = summarize(events, s.device.type == "cuda", wall_s, p.iters)
    phases = {name: sum(r["ms_per_step"] for r in rows if r["phase"] == name) for name in (*PHASES, "other")}
    return {"step": step, "scale": scale, "device": s.device, "precision": s.precision,
            "channels_last": s.channels_last, "batch": s.batch, "resolution": s.resolution,
            "width_multiplier": s.model_cfg.width_multiplier, "gmacs": macs, "steps": p.iters,
            "compile": p.compile_mode or "off", "ms_per_step": 1000 * plain_s,
            "profiled_ms_per_step": 1000 * wall_s / p.iters,
            "device_ms_per_step": 1000 * device_s / p.iters, "busy": device_s / wall_s, "phases_ms": phases,
            "rows": rows}


def _profiled(fn, device: torch.device, steps: int) -> tuple[list, float]:
    """The profiler's events of `steps` runs of fn and their wall seconds. Our own loop, not Timer: the profiler
    steps between the runs, and the wall time ends with the last run's device work, before the profiler's own."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    # one step with the profiler warming up (its first step costs it more), then `steps` recorded ones
    with profile(activities=activities, record_shapes=True,
                 schedule=schedule(wait=0, warmup=1, active=steps, repeat=1)) as prof:
        fn()
        sync(device)
        prof.step()
        start = time.perf_counter()
        for i in range(steps):
            fn()
            if i == steps - 1:
                sync(device)
                wall_s = time.perf_counter() - start
            prof.step()
    return prof.events(), wall_s


STEP_COLUMNS = ("step", "GMACs/img", "ms/step", "ms/step profiled", "busy ms/step", "busy", "forward ms",
                "backward ms", "optimizer ms", "top entry (share of the step)")
TOP_COLUMNS = ("#", "phase", "name", "under op", "calls/step", "ms/step", "share of step",
               "largest input shapes (their share of the row)")


def write_profiles(results: list[dict], out: Path, top: int = 15) -> list[Path]:
    """One CSV per step and one Markdown summary for all of them."""
    out.mkdir(parents=True, exist_ok=True)
    first = results[0]
    tag = "cpu" if first["device"].type == "cpu" else "gpu"
    paths = []
    for r in results:
        path = out / f"profile_{tag}_{r['scale']}_{r['step']}.csv"
        pd.DataFrame(r["rows"], columns=list(COLUMNS)).to_csv(path, index=False, float_format="%.6g")
        paths.append(path)
    summary = out / f"profile_{tag}_{first['scale']}.csv"
    pd.DataFrame([{**{k: r[k] for k in SUMMARY}, **{f"{p}_ms": r["phases_ms"][p] for p in (*PHASES, "other")},
                   "top": r["rows"][0]["name"] if r["rows"] else "", "top_share": r["rows"][0]["share"] if r["rows"]
                   else None} for r in results]).to_csv(summary, index=False, float_format="%.6g")
    paths.append(summary)
    lines = [*_header(first, tag), "", *markdown([_step_cells(r) for r in results], STEP_COLUMNS)]
    for r in results:
        lines += ["", f"## {r['step']}: top {min(top, len(r['rows']))} of {len(r['rows'])} "
                      f"({'kernels' if tag == 'gpu' else 'ops'}; all in profile_{tag}_{r['scale']}_{r['step']}.csv)",
                  "", *markdown([_top_cells(i, row) for i, row in enumerate(r["rows"][:top], 1)], TOP_COLUMNS)]
    md = out / f"profile_{tag}_{first['scale']}.md"
    md.write_text("\n".join(lines) + "\n")
    return [*paths, md]


def _header(first: dict, tag: str) -> list[str]:
    """The summary's title and what it measured (the first result's settings: every result has them)."""
    what = "device (kernel) time" if tag == "gpu" else "self CPU time of each op"
    return [f"# Profile of the training step on {device_name(first['device'])}", "",
            f"torch {torch.__version__}, torchvision {torchvision.__version__}, {datetime.date.today().isoformat()}; "
            f"`python -m roadmap.bench --profile --scale {first['scale']}`: scale {first['scale']} "
            f"({first['resolution']}px, width x{first['width_multiplier']:g}, batch {first['batch']}), "
            f"{first['precision']}, channels_last={first['channels_last']}, compile={first['compile']} (the trainer's "
            f"settings on this device); {first['steps']} profiled steps after an unprofiled timing. One training step "
            f"= forward + loss + backward + the recipe's optimizer step on one random batch already on the device. "
            f"Times are {what}; *busy* = that time over the wall time of the profiled steps."]


def _step_cells(r: dict) -> list[str]:
    t = r["rows"][0] if r["rows"] else {"name": "", "share": 0.0}
    p = r["phases_ms"]
    return [r["step"], f"{r['gmacs']:.4f}", f"{r['ms_per_step']:.2f}", f"{r['profiled_ms_per_step']:.2f}",
            f"{r['device_ms_per_step']:.2f}", f"{100 * r['busy']:.0f}%", f"{p['forward']:.2f}",
            f"{p['backward']:.2f}", f"{p['optimizer']:.2f}", f"`{_short(t['name'])}` ({100 * t['share']:.1f}%)"]


def _top_cells(i: int, row: dict) -> list[str]:
    shapes = f"{_short(row['shapes'], 60)} ({100 * row['shapes_share']:.0f}%)" if row["shapes"] else ""
    return [str(i), row["phase"], f"`{_short(row['name'])}`", _short(row["op"], 60), f"{row['calls_per_step']:.0f}",
            f"{row['ms_per_step']:.3f}", f"{100 * row['share']:.1f}%", shapes]


def _short(name: str, n: int = 90) -> str:
    name = name.replace("|", "/")
    return name if len(name) <= n else name[: n - 3] + "..."


def run_profiles(steps, scale: str, p: ProfileSettings = ProfileSettings()) -> list[Path]:
    """Profile every step at a scale, printing a line per step; the paths written."""
    results = []
    for step in steps:
        r = profile_step(step, scale, p)
        top_row = r["rows"][0] if r["rows"] else {"name": "-", "share": 0}
        print(f"{step:<24} {r['ms_per_step']:8.2f} ms/step ({r['profiled_ms_per_step']:.2f} profiled), busy "
              f"{100 * r['busy']:.0f}%, top: {_short(top_row['name'], 60)} {100 * top_row['share']:.1f}%", flush=True)
        results.append(r)
    return write_profiles(results, p.out, p.top)
