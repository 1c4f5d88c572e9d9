"""Where a run computes: the device (train.device), the DDP process group torchrun starts, the GPU a run claims when
runs go side by side on a machine with several GPUs, and the threads each run uses."""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig

from roadmap import store
from roadmap.errors import ConfigError


@dataclasses.dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1
    gpu_lock: object = None  # this run's hold on its GPU, when runs side by side share the machine's GPUs

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_runtime(train_cfg, runs_root=".") -> Runtime:
    """Device from train.device (auto: cuda, mps, cpu); torchrun's environment starts DDP (NCCL on GPU, gloo on
    CPU). Runs side by side on a machine with several GPUs (the parallel launcher) each take a free GPU of their
    own (store.claim_gpu)."""
    if "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", 1)) > 1 and \
            "SUBMITIT_EXECUTOR" in os.environ:  # several tasks of one SLURM job: submitit knows the rendezvous
        import submitit  # an optional dependency (the submitit launcher's), there only on SLURM

        submitit.helpers.TorchDistributedEnvironment().export()
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    name = device_name(train_cfg.device)
    device, held = torch.device(f"cuda:{local_rank}" if name == "cuda" else name), None
    if name == "cuda" and world == 1 and torch.cuda.device_count() > 1 and runs_at_once() > 1:
        index, held = store.claim_gpu(runs_root, torch.cuda.device_count())
        device = torch.device(f"cuda:{index}")
    if name == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if name == "cuda" else "gloo")
    torch.set_num_threads(threads(train_cfg.threads, runs_at_once()))
    return Runtime(device, rank, world, held)


def device_name(setting: str) -> str:
    """train.device as a device torch has here (auto: cuda, else mps, else cpu), or a one-line error naming what is."""
    available = [name for name, ok in (("cuda", torch.cuda.is_available()), ("mps", torch.backends.mps.is_available()),
                                       ("cpu", True)) if ok]
    if setting == "auto":
        return available[0]
    if setting not in available:
        raise ConfigError(f"train.device={setting}: torch sees no {setting.upper()} device here; available: auto, "
                          f"{', '.join(available)}")
    return setting


def threads(setting: int | str, runs_at_once: int = 1) -> int:
    """train.threads: a number, or auto: OMP_NUM_THREADS where it is set (as schedulers set it per task), else the
    cores this process may use shared among the runs side by side (conf/hydra/launcher/parallel.yaml) and the
    processes of each (torchrun's local ranks)."""
    if setting != "auto":
        return setting
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    cores = len(os.sched_getaffinity(0))
    return max(1, cores // (int(os.environ.get("LOCAL_WORLD_SIZE", 1)) * runs_at_once))


def runs_at_once() -> int:
    """How many runs the sweep's launcher runs side by side on this machine: the parallel launcher's n_jobs
    (-1: one per core, as joblib counts), else 1."""
    n = HydraConfig.get().launcher.get("n_jobs") if HydraConfig.initialized() else None
    if not isinstance(n, int) or n == 0:
        return 1
    cores = len(os.sched_getaffinity(0))
    return min(cores, n if n > 0 else max(1, cores + 1 + n))
