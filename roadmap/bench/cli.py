"""python -m roadmap.bench: the cost of every roadmap step on this device, next to torchvision's own models.

For every step of a roadmap (the published networks, 1000 classes): params, GMACs, training img/s (forward +
backward + AdamW step), inference img/s and peak memory (on a CPU the peak resident memory of the training step in a
process of its own, roadmap.bench.memory; on a GPU the memory it allocated); torchvision's resnet50 and
convnext_tiny under the same settings, with and/or without torch.compile (--compile off|on|both), and our endpoints'
step-time ratios to them; the model FLOP utilisation on GPU; the training throughput at the `cifar` scale and the
estimated wall time of the whole cifar-scale sweep; and the trainer's end-to-end img/s against the model alone
(embedded scale on CPU, cifar scale on GPU). Writes bench_<cpu|gpu>_<roadmap>.csv and .md (device, versions, date,
settings in the header).

python -m roadmap.bench --loader: the data loaders instead (see `loaders`), written to loader_<cpu|gpu>.csv/.md.
python -m roadmap.bench --profile [--steps ...] [--scale cifar ...]: where the training step's time goes, by kernel
(CUDA) or op (CPU), and how busy the device is (roadmap.bench.profiling), written to profile_<cpu|gpu>_<scale>*.
python -m roadmap.bench --variants [--budget SECONDS]: the training step under every speed variant worth trying, in
one call of bounded time (roadmap.bench.variants), written to variants_<cpu|gpu>.csv/.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from roadmap.bench.loaders import loaders, write_loaders
from roadmap.bench.networks import BenchSettings, run, write
from roadmap.bench.profiling import ProfileSettings, run_profiles
from roadmap.bench.timing import device_of
from roadmap.bench.variants import BY_NAME, KERNEL_STEPS, VariantsSettings, floor_tflops, run_variants
from roadmap.config import CONF_DIR, load_roadmap
from roadmap.errors import ConfigError, OneLineParser, path_argument


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
    p.add_argument("--steps", nargs="+", default=None,
                   help="only these steps (default: all; --profile: the roadmap's baseline and endpoint; --variants: "
                        "those and kernel_7, kernel_9, kernel_11)")
    p.add_argument("--no-trainer", action="store_true", help="skip the embedded-scale trainer overhead check")
    p.add_argument("--trainer-steps", type=int, default=60, help="optimizer steps of the trainer overhead check")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of ours vs torchvision")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="dense bf16 peak of the GPU for the FLOP utilisation (known: H100, H200, A100, L40S, ...)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=path_argument, default=Path("benchmarks"))
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
    road = load_roadmap(a.roadmap)
    ends = [road.baseline, road.endpoint.name]
    if a.profile:
        settings = ProfileSettings(a.roadmap, a.device, a.batch,
                                   a.warmup if a.warmup is not None else (3 if gpu else 1),
                                   a.iters if a.iters is not None else (3 if gpu else 2),
                                   "default" if a.compile == "on" else None, a.out, a.top)
        for scale in a.scale or ["cifar"]:
            yield from run_profiles(a.steps or ends, scale, settings)
    if a.variants:
        steps = a.steps or ends + [k for k in KERNEL_STEPS if road.get(k) is not None]
        settings = VariantsSettings(a.roadmap, a.device, a.batch,
                                    a.warmup if a.warmup is not None else (3 if gpu else 1),
                                    a.iters if a.iters is not None else (6 if gpu else 2), a.budget,
                                    tuple(a.only_variants) if a.only_variants else None,
                                    a.compile_estimate or (40.0 if gpu else 90.0), a.out,
                                    floor_tflops(a.device, a.peak_tflops))
        yield from run_variants(steps, a.scale or ["cifar", "imagenet"], settings)


def _run(a: argparse.Namespace, gpu: bool) -> dict:
    """The benchmark (`networks.run`) with the arguments' defaults for this device."""
    return run(BenchSettings(roadmap=a.roadmap, batch=a.batch or (128 if gpu else 8), resolution=a.resolution,
                             precision=a.precision or ("bf16" if gpu else "fp32"),
                             channels_last=gpu if a.channels_last is None else a.channels_last,
                             compile_modes={"off": (False,), "on": (True,), "both": (False, True)}[a.compile],
                             warmup=a.warmup if a.warmup is not None else (5 if gpu else 1),
                             iters=a.iters if a.iters is not None else (20 if gpu else 3),
                             cifar_batch=a.cifar_batch or (512 if gpu else 64), device=a.device,
                             only=tuple(a.steps) if a.steps else None, trainer=not a.no_trainer, rounds=a.rounds,
                             peak=a.peak_tflops, trainer_steps=a.trainer_steps))
