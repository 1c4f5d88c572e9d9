"""Training one run. The package's public surface is below (`__all__`); its modules, in the order a run meets them:

- preflight: everything a run is, checked before anything is written (Run, check)
- runtime: the device, DDP, the GPU a run claims, threads (Runtime)
- resume: what a run directory holds: fingerprints, previous summary and checkpoint, restoring the state
- job: the objects a run trains with, built (Job, build)
- step: the training step, eager or one CUDA graph, and its assembly (assemble_step)
- recipe: the recipe's optimizer, schedule, loss and EMA
- loop: one batch, one epoch, fit
- validation: top-1 / top-5 evaluation
- robustness: top-1 on corrupted validation images after training
- summary: the run's summary.json, and the record of a failed run
- signals: clean interrupts (SIGINT, SIGTERM)
- tracking: wandb
- trainer: train(cfg): the order of all this
- launch: the launcher a sweep goes through (python -m roadmap.train.launch)
"""

from roadmap.train.job import Job, build
from roadmap.train.loop import save_checkpoint, train_batch
from roadmap.train.preflight import Run, check
from roadmap.train.robustness import measure_robustness
from roadmap.train.signals import Interrupted, sigterm_interrupts
from roadmap.train.step import AUTOCAST_DTYPES, AssembledStep, assemble_step
from roadmap.train.summary import write_failure
from roadmap.train.trainer import train
from roadmap.train.validation import evaluate

__all__ = ["train", "check", "build", "train_batch", "evaluate", "save_checkpoint", "measure_robustness",
           "assemble_step", "AssembledStep", "AUTOCAST_DTYPES", "Run", "Job", "Interrupted", "sigterm_interrupts",
           "write_failure"]
