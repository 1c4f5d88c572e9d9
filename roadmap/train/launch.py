"""The launcher a sweep's runs go through for `make roadmap JOBS=...`: prints its Hydra overrides.

    python -m roadmap.train.launch auto|N|1

1: the basic launcher (one run after the other). auto or N: runs side by side, through Ray where it is installed
(conf/hydra/launcher/ray_parallel.yaml: each run asks for its cores and, on a GPU machine, one GPU), else through
joblib (conf/hydra/launcher/parallel.yaml), saying in one line how to get Ray. auto = one run per GPU where torch sees
GPUs, else one per core.
"""

import importlib.util
import os
import sys

RAY_MISSING = ("note: runs side by side through joblib; for Ray (its resource scheduler, a Ray cluster): "
               "pip install -e '.[ray]'")


def ray_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("ray", "hydra_plugins.hydra_ray_launcher"))


def overrides(jobs: str, gpus: int, cores: int, ray: bool) -> list[str]:
    """Hydra overrides for `jobs` runs at once (auto, a positive number or 1) on a machine with `gpus` GPUs and
    `cores` cores, through Ray when `ray`."""
    if jobs != "auto" and not (jobs.isascii() and jobs.isdigit() and int(jobs) > 0):
        raise ValueError(f"JOBS={jobs!r}: auto, 1 (one run after the other) or how many runs at once")
    n = (gpus or cores) if jobs == "auto" else int(jobs)
    if n == 1:
        return []
    if not ray:
        return ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={n}"]
    per_run = ["hydra.launcher.ray.remote.num_gpus=1"] if gpus else []
    return ["hydra/launcher=ray_parallel", f"hydra.launcher.ray.remote.num_cpus={max(1, cores // n)}", *per_run]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    import torch

    ray = ray_installed()
    try:
        if len(argv) > 1:  # `make roadmap JOBS="2 4"`: one number, not the first of several
            raise ValueError(f"JOBS={' '.join(argv)!r}: one value, auto or how many runs at once")
        args = overrides(argv[0] if argv else "auto", torch.cuda.device_count(), len(os.sched_getaffinity(0)), ray)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args and not ray:
        print(RAY_MISSING, file=sys.stderr)
    print(" ".join(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
