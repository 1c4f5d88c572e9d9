"""The networks benchmark (python -m roadmap.bench): every step of a roadmap (the published networks, 1000 classes)
measured on this device (params, GMACs, training and inference img/s, peak memory: a CPU's peak resident memory of
the training step in a process of its own, roadmap.bench.memory; the GPU memory allocated on CUDA), torchvision's
models against the
steps that are the same network (eager and/or compiled, in alternating rounds), the model FLOP utilisation, the
cifar-scale img/s and sweep estimate, and the trainer's end-to-end img/s against the model alone (`run`), written as
bench_<cpu|gpu>_<roadmap>.csv and .md (`write`)."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import statistics
import tempfile
from pathlib import Path

import pandas as pd
import torch
import torchvision

from roadmap.bench.memory import step_rss
from roadmap.bench.throughput import measure
from roadmap.bench.timing import device_name, device_of, peak_tflops
from roadmap.config import compose, load_roadmap, model_config, step_model_config
from roadmap.nets.model import RoadmapNet, gmacs, num_params
from roadmap.tables import markdown
from roadmap.train import train

# torchvision's models and the roadmap steps that are the same network
REFERENCES = {"convnext_t": {"resnet50": "resnet50", "convnext_tiny": "separate_downsampling"},
              "convnext_b": {"convnext_base": "separate_downsampling"},
              "bag_of_tricks": {"resnet50": "resnet_b"}}


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """What `run` measures and how (the command line's defaults for a device: cli)."""
    roadmap: str = "convnext_t"
    batch: int = 8
    resolution: int = 224
    precision: str = "fp32"  # fp32 or bf16 (autocast)
    channels_last: bool = False
    compile_modes: tuple[bool, ...] = (False,)  # the endpoints and torchvision's models eager and/or compiled
    warmup: int = 2  # untimed runs before each timing
    iters: int = 5  # timed runs
    cifar_batch: int = 64  # batch of the cifar-scale img/s
    cifar_epochs: int = 100  # epochs of a cifar-scale run, for the sweep's estimated wall time
    device: str | None = None  # None: cuda where torch sees a GPU, else cpu
    only: tuple[str, ...] | None = None  # only these steps (None: all)
    trainer: bool = True  # measure the trainer's end-to-end img/s against the model alone
    rounds: int = 3  # alternating rounds of ours vs torchvision
    peak: float | None = None  # dense bf16 TFLOP/s of the GPU for the FLOP utilisation (None: by its name)
    trainer_steps: int = 60  # optimizer steps of the trainer overhead check
    rss_steps: int = 2  # training steps of a network in its own process, for its peak resident memory (not on CUDA)


def run(s: BenchSettings = BenchSettings()) -> dict:
    """Every step of the roadmap (or those in `s.only`) and torchvision's models measured on this device:
    {"meta": the settings and the summary numbers, "rows": a row per step and reference model}."""
    device = device_of(s.device)
    torch.set_flush_denormal(True)
    settings = dict(batch=s.batch, resolution=s.resolution, num_classes=1000, device=device, precision=s.precision,
                    channels_last=s.channels_last, compile_model=False, warmup=s.warmup, iters=s.iters)
    steps = load_roadmap(s.roadmap).steps
    rss = None if device.type == "cuda" else s.rss_steps  # CUDA: the GPU memory the timed steps allocated
    rows = _step_rows(steps, s.roadmap, settings, s.cifar_batch, s.only, rss)
    _reference_rows(rows, s.roadmap, settings, s.compile_modes, s.rounds, s.only, rss)
    peak = peak_tflops(device, s.peak)
    if peak:  # model FLOP utilisation: 3 x forward FLOPs (fwd + bwd) per image at the measured rate
        for r in rows:
            r["mfu"] = 6 * r["gmacs"] * (s.resolution / 224) ** 2 * 1e9 * r["train_img_s"] / (peak * 1e12)
    roadmap_rows = [r for r in rows if r["model"] == "roadmap" and "cifar_img_s" in r]
    sweep_hours = sum(s.cifar_epochs * 50_000 / r["cifar_img_s"] for r in roadmap_rows) / 3600
    overhead = None
    if s.trainer:
        overhead = trainer_overhead(steps[-1].name, "cifar" if device.type == "cuda" else "embedded", s.trainer_steps)
    meta = {"device": device_name(device), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "date": datetime.date.today().isoformat(), "roadmap": s.roadmap, "steps": len(steps), "batch": s.batch,
            "resolution": s.resolution, "precision": s.precision, "channels_last": s.channels_last,
            "compile": "/".join("on" if c else "off" for c in s.compile_modes), "cifar_batch": s.cifar_batch,
            "cifar_sweep_hours": sweep_hours, "trainer_overhead": overhead, "peak_tflops": peak,
            "memory": "peak_gpu_mb" if rss is None else "peak_rss_mb", "rss_steps": rss,
            "imports_rss_mb": max((r["imports_rss_mb"] for r in rows if "imports_rss_mb" in r), default=None)}
    return {"meta": meta, "rows": rows}


def _step_rows(steps, roadmap: str, settings: dict, cifar_batch: int, only, rss: int | None) -> list[dict]:
    """A row per step, eager: params, GMACs, `measure`'s numbers, the peak resident memory of its training step in a
    process of its own (`rss` steps; None: not measured, as on CUDA) and the training img/s of the step's network at
    the cifar scale (at cifar_batch); a network several steps share is measured once."""
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
            del model  # not held while the network's own process runs
            row.update(_own_process_rss(functools.partial(RoadmapNet, cfg), settings, rss))
            small = RoadmapNet(dataclasses.replace(cfg, num_classes=cifar.data.num_classes,
                                                   width_multiplier=cifar.model.width_multiplier))
            row["cifar_img_s"] = measure(small, **cifar_settings)["train_img_s"]
            cache[cfg] = row
        rows.append({"step": s.name, "model": "roadmap", "compile": False, **cache[cfg]})
        print(f"{s.name:<24} {rows[-1]['train_img_s']:8.1f} train img/s {rows[-1]['infer_img_s']:8.1f} "
              f"infer img/s  {_memory(rows[-1]):8.0f} MB {'peak RSS' if rss else 'peak GPU'}", flush=True)
    return rows


def _own_process_rss(build, settings: dict, rss: int | None) -> dict:
    """memory.step_rss of the network `build()` makes, at the benchmark's settings ({} when rss is None)."""
    if rss is None:
        return {}
    keep = ("batch", "resolution", "num_classes", "device", "precision", "channels_last")
    return step_rss(build, **{k: settings[k] for k in keep}, steps=rss)


def _memory(row: dict) -> float:
    """A row's peak memory: resident (CPU) or allocated on the GPU; NaN when not measured (a compiled row on CPU)."""
    return row.get("peak_rss_mb", row.get("peak_gpu_mb", float("nan")))


def _reference_rows(rows: list[dict], roadmap: str, settings: dict, compile_modes, rounds: int, only,
                    rss: int | None) -> None:
    """Add to `rows` torchvision's models of the roadmap, each measured against the step that is the same network,
    eager and/or compiled: a row per torchvision model (and per compiled step), with the step time ratio, which the
    eager step's own row gets too; an eager torchvision row gets its peak resident memory too (`rss`: as the
    steps')."""
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
                memory = {} if compiled else _own_process_rss(getattr(torchvision.models, tv_name), settings, rss)
                rows.append({"step": name, "model": model, "compile": compiled, "params": num_params(net),
                             "gmacs": round(gmacs(net), 3), **m, **memory, "ratio_ours_to_torchvision": ratio})
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


def trainer_overhead(step: str, scale: str, steps_per_epoch: int = 60) -> dict:
    """End-to-end img/s of the trainer (data on the device, augmentation, logging) vs the model-only img/s of the same
    network, batch and precision, on random data of the scale's shape."""
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


BENCH_COLUMNS = ("step", "params", "GMACs", "train ms/step", "train img/s", "infer img/s", "peak RSS MB",
                 "cifar-scale img/s", "ours / torchvision")  # on CUDA "peak GPU MB" instead of "peak RSS MB"


def write(result: dict, out: Path) -> list[Path]:
    """bench_<cpu|gpu>_<roadmap>[_compiled].csv (every number of every row) and .md (the settings, the table, the
    sweep estimate, the FLOP utilisation and the trainer's overhead); their paths."""
    out.mkdir(parents=True, exist_ok=True)
    meta, df = result["meta"], pd.DataFrame(result["rows"])
    tag = "gpu" if "CPU" not in meta["device"] else "cpu"
    stem = out / f"bench_{tag}_{meta['roadmap']}{'_compiled' if meta['compile'] == 'on' else ''}"
    df.to_csv(stem.with_suffix(".csv"), index=False)
    lines = [f"# Benchmark: {meta['roadmap']} on {meta['device']}", "",
             f"torch {meta['torch']}, torchvision {meta['torchvision']}, {meta['date']}; batch {meta['batch']} at "
             f"{meta['resolution']}px, {meta['precision']}, channels_last={meta['channels_last']}, "
             f"compile={meta['compile']} (the training step of the endpoints and torchvision's models; inference "
             f"is eager). Training = forward + backward + AdamW step. {_memory_note(meta)}", "",
             *markdown([_bench_cells(r) for r in result["rows"]], _columns(meta)), *_summary_lines(result)]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return [stem.with_suffix(".csv"), stem.with_suffix(".md")]


def _columns(meta: dict) -> tuple[str, ...]:
    """The table's columns: its memory column says which memory it is."""
    gpu = meta.get("memory") == "peak_gpu_mb"
    return tuple("peak GPU MB" if gpu and c == "peak RSS MB" else c for c in BENCH_COLUMNS)


def _memory_note(meta: dict) -> str:
    """What the table's memory column measured."""
    if meta.get("memory") == "peak_gpu_mb":
        return "Peak GPU MB: torch.cuda.max_memory_allocated over the timed training steps."
    imports = meta.get("imports_rss_mb")
    return (f"Peak RSS MB: the peak resident memory of a process of its own that builds the network and runs "
            f"{meta.get('rss_steps')} of its training steps at this batch and resolution (roadmap.bench.memory: "
            f"VmHWM), Python and torch's imports included" + (f" ({imports:.0f} MB of it)" if imports else "")
            + "; not measured for a compiled row.")


def _bench_cells(r: dict) -> list[str]:
    """A row of the Markdown table (an empty cell for a number a row has not: missing or NaN)."""
    ratio, cifar = r.get("ratio_ours_to_torchvision"), r.get("cifar_img_s")
    return [f"{r['step']} (compiled)" if r.get("compile") else r["step"], f"{r['params']:,}", f"{r['gmacs']:.3f}",
            f"{r['train_step_ms']:.1f}", f"{r['train_img_s']:.1f}", f"{r['infer_img_s']:.1f}",
            _cell(_memory(r), ".0f"), "" if cifar is None or cifar != cifar else f"{cifar:.0f}",
            "" if ratio is None or ratio != ratio else f"{ratio:.3f}"]


def _cell(value, fmt: str) -> str:
    """A number as a cell (empty for NaN)."""
    return "" if value != value else format(value, fmt)


def _summary_lines(result: dict) -> list[str]:
    """The lines under the table: the sweep's estimated wall time, the FLOP utilisation, the trainer's overhead."""
    meta = result["meta"]
    measured = sum(1 for r in result["rows"] if "cifar_img_s" in r)
    which = "whole cifar-scale roadmap sweep" if measured == meta["steps"] else \
        f"cifar-scale sweep of the {measured} measured steps (of {meta['steps']})"
    lines = ["", f"Estimated wall time of the {which} ({measured} steps, 100 epochs of 50k images, from the "
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
    return lines
