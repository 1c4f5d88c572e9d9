import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")


def _share_the_cores() -> None:
    """Under pytest-xdist (`make test` runs `pytest -n auto`), each worker gets its share of the cores for torch's
    intra-op threads, and so do the trainings it starts in subprocesses (OMP_NUM_THREADS): two workers on two cores
    run one thread each instead of four threads fighting over two cores. A run of its own keeps torch's default."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = str(max(1, cores // workers))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, threads)
    mine = os.environ["OMP_NUM_THREADS"]  # one's own setting wins
    torch.set_num_threads(int(mine) if mine.isdigit() and int(mine) > 0 else int(threads))


_share_the_cores()


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need a CUDA device: `make gpu-check` runs them; elsewhere they are skipped."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run `make gpu-check` on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
