"""The peak resident memory of one network's training step on a CPU (`step_rss`), measured in a process of its own.

Why a process of its own: a process's peak resident set (VmHWM, getrusage's ru_maxrss, what `/usr/bin/time -v`
reports) can only grow, so in the benchmark's own process it would be the largest network measured so far, not
this one's; and counting bytes (weights, grads, AdamW state, the tensors saved for backward) leaves out backward's
temporaries, the allocator's slack and the interpreter, which a machine has to hold too. So a fresh Python (a
subprocess: nothing inherited from the benchmark's memory, and unlike multiprocessing's spawn it does not import the
caller's main script again) builds the network, runs `steps` training steps of it as `throughput.measure` times
them, and reports its own peak resident memory (`peak_rss_bytes`): what training that network needs as a process,
Python and torch's imports included (which it reports apart, as its peak before the network is built). While it
runs, the caller holds only what it still uses: `release_freed` gives the memory its measurements freed back to the
system first (glibc keeps a freed heap resident: 1.6 GB after timing ResNet-50 at batch 8, 0.74 GB after
malloc_trim), so the two processes together hold little more than the network's step."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path

# ru_maxrss is in KiB on Linux, in bytes on macOS
_RSS_UNIT = 1 if sys.platform == "darwin" else 1024
_CHILD = "from roadmap.bench.memory import child_main; child_main()"


def step_rss(build, *, batch: int, resolution: int, num_classes: int, device, precision: str, channels_last: bool,
             steps: int = 2) -> dict:
    """{"peak_rss_mb": the peak resident memory (MiB) of a fresh process that builds the network (`build()`, a
    picklable callable: functools.partial(RoadmapNet, cfg), a torchvision model function) and runs `steps` training
    steps of it (the second one is the first with AdamW's state), "imports_rss_mb": that process's resident memory
    before building it (Python, torch and the modules `build` lives in), "rss_process_s": the process's wall seconds,
    start to end (what measuring the memory adds to a benchmark)}."""
    settings = dict(batch=batch, resolution=resolution, num_classes=num_classes, device=str(device),
                    precision=precision, channels_last=channels_last)
    release_freed()
    root = str(Path(__file__).resolve().parents[2])  # the folder roadmap/ is in, for a checkout not installed
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH")))))
    start = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", _CHILD], input=pickle.dumps((build, settings, steps)),
                       capture_output=True, env=env)
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"the memory measurement's process exited {p.returncode}: {err[-1] if err else ''}")
    return {**json.loads(p.stdout.decode().strip().splitlines()[-1]), "rss_process_s": time.perf_counter() - start}


def child_main() -> None:
    """The fresh process: reads (build, settings, steps) pickled on stdin, runs the network's training steps and prints
    its own peak resident memory as one JSON line."""
    build, settings, steps = pickle.load(sys.stdin.buffer)
    import torch

    from roadmap.bench.throughput import training_step

    torch.set_flush_denormal(True)  # as the benchmark runs it
    imports = peak_rss_bytes()
    torch.manual_seed(0)
    model = build().train()
    step, _ = training_step(model, **settings)
    for _ in range(steps):
        step()
    print(json.dumps({"peak_rss_mb": peak_rss_bytes() / 2**20, "imports_rss_mb": imports / 2**20}), flush=True)


def release_freed() -> None:
    """Give the memory this process has freed back to the system: collect garbage, then glibc's malloc_trim (a no-op
    where the C library has none)."""
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far, in bytes: Linux's VmHWM (the high-water mark of this process's
    own address space, which starts anew at exec), else getrusage's ru_maxrss. Not ru_maxrss on Linux: the kernel
    carries it over from the address space an exec replaces, so a child started by a 3 GB process (fork or vfork,
    then exec) reports at least 3 GB whatever it does itself."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # in kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _RSS_UNIT
