"""The benchmarks' timing toolkit: the device asked for (--device), its name for a table's header, its dense bf16
peak, waiting for its queued work, and timing a function on it (torch.utils.benchmark.Timer after a timed warm-up).
Every benchmark mode times through here; nothing here knows a network or a mode."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from roadmap.errors import ConfigError

if TYPE_CHECKING:
    from torch.utils.benchmark import Timer

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "4090": 165.0}


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
    """(wall seconds of the warmup runs, seconds per fn() over iters timed runs after them). The warmup time holds what
    first calls cost: torch.compile's compilation, CUDA graph capture, cuDNN autotuning.

    The timed runs go through torch.utils.benchmark.Timer.timeit(iters): two more untimed calls first, then the iters
    calls back to back with the device synchronised around them (not after each call, which left the GPU idle while
    the host launched the next step's first kernels), on all of torch's threads (Timer's default is one). The warm-up
    stays our own loop: Timer does not time its warm-up, and the warm-up's wall time is how long a compile took.
    Measured against the former loop (a median of one-call timings) on the CPU: benchmarks/RESULTS.md."""
    t = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync(device)
    warm = time.perf_counter() - t
    return warm, timer(fn, device).timeit(iters).median


def timed(fn, device, warmup: int, iters: int) -> float:
    """Seconds per fn() over iters runs after warmup runs."""
    return timings(fn, device, warmup, iters)[1]


def timer(fn, device) -> Timer:
    """A torch.utils.benchmark.Timer of fn() on `device`, on all of torch's threads."""
    # imported here, not at the top: torch.utils.benchmark imports torch.utils.cpp_extension, which logs a warning on
    # a machine without a CUDA runtime, and the command line's errors are one line
    from torch.utils.benchmark import Timer

    return Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads(), timer=_clock(device))


def _clock(device):
    """The clock Timer reads: perf_counter after waiting for `device` (Timer's own waits for the current accelerator,
    which is not --device cuda:1)."""
    def clock() -> float:
        sync(device)
        return time.perf_counter()

    return clock
