"""Robustness of a trained network: its top-1 on corrupted copies of (part of) the validation set, every corruption
of `roadmap.data.corruptions` at every severity, after training (eval.robustness, on by default, on
eval.robustness_images images spread over the validation set). The summary keeps it as

    robustness: {images, clean_top1 (the same images uncorrupted), mean_top1 (over corruptions and severities),
                 top1: {corruption: [top-1 at severity 1, 2, 3]}, seconds}

and the report (roadmap.report.robustness) turns it into paired changes per step and mCE against the baseline.
"""

from __future__ import annotations

import time

from roadmap import data as data_lib
from roadmap.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from roadmap.train.job import Job
from roadmap.train.preflight import Run
from roadmap.train.validation import evaluate


def measure_robustness(run: Run, job: Job) -> dict:
    """The final model's robustness record, with its one line."""
    record = measure(run, job)
    run.say(f"[{run.step.name}] {describe(record)}")
    return record


def subset(run: Run, job: Job) -> data_lib.TensorSplit:
    """The clean images robustness is measured on: the first eval.robustness_images of the validation set, spread
    evenly over it."""
    s = run.settings
    val = job.val_loader.split if isinstance(job.val_loader, data_lib.TensorLoader) else None
    return data_lib.eval_subset(s.data, val, s.eval.robustness_images, run.rt.device)


def measure(run: Run, job: Job) -> dict:
    """The robustness record of the run's final (EMA, where there is one) model, evaluated as after every epoch."""
    t0 = time.perf_counter()
    s, rt = run.settings, run.rt
    clean = subset(run, job)
    norm = data_lib.normalize(s.data)

    def top1(split):
        loader = data_lib.TensorLoader(split, s.train.batch_size // rt.world, train=False, seed=s.seed,
                                       rank=rt.rank, world=rt.world, norm=norm)
        return evaluate(job.eval_model, loader, rt, job.autocast, run.channels_last)[0]

    table = {name: [top1(data_lib.TensorSplit(corrupt(clean.images, name, severity), clean.labels))
                    for severity in SEVERITIES] for name in CORRUPTIONS}
    values = [v for row in table.values() for v in row]
    return {"images": len(clean.labels), "clean_top1": top1(clean), "mean_top1": sum(values) / len(values),
            "top1": table, "seconds": time.perf_counter() - t0}


def describe(record: dict) -> str:
    """The run's one line about it."""
    return (f"robustness: top-1 {record['mean_top1']:.2f} on corrupted images ({len(record['top1'])} corruptions x "
            f"{len(SEVERITIES)} severities of {record['images']} images; clean {record['clean_top1']:.2f}) in "
            f"{record['seconds']:.1f}s")
