"""Everything a run is, checked before anything is written (`check` -> `Run`): the validated settings, the step and
its roadmap, the network (chosen and refused in one line where the data or the batch cannot go through it), the
runtime, the precision and memory format as resolved on the device, whether the step is one CUDA graph, and the
fingerprint that a run directory's files must agree with to be resumed."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from roadmap import store
from roadmap.config import model_config, roadmap_of, step_of, validate
from roadmap.errors import ConfigError
from roadmap.kinds import kind_of
from roadmap.explore.space import admitted
from roadmap.nets import swin as reference
from roadmap.nets.model import ModelConfig
from roadmap.nets.swin import ReferenceConfig
from roadmap.settings import IMAGE_CHANNELS, RunSettings
from roadmap.steps import Roadmap, Step
from roadmap.train.runtime import Runtime, setup_runtime


@dataclasses.dataclass
class Run:
    """Everything a run is, checked, before anything is written."""
    cfg: DictConfig
    settings: RunSettings  # train, data, recipe, ... as checked values
    step: Step
    roadmap: Roadmap
    model_cfg: ModelConfig | ReferenceConfig  # a roadmap network, or a reference network (roadmap.nets.swin)
    rt: Runtime
    dir: Path
    kind: str  # roadmap, isolated, leave_one_out or explore (roadmap.kinds.KINDS)
    fingerprint: dict
    precision: str  # bf16, fp16 or fp32, as trained
    channels_last: bool
    cuda_graphs: bool  # the training step captured as a CUDA graph
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:12])  # this run's identity: in its last.pt
    #   and every metrics line, so the files of two runs (one that replaced another, a kill part-way) are told apart

    def say(self, *args, **kwargs):
        if self.rt.main:
            print(*args, **kwargs)


def check(cfg: DictConfig) -> Run:
    """Every value the run needs, validated (one-line ConfigError otherwise); starts the process group."""
    settings = validate(cfg)
    roadmap = roadmap_of(cfg)
    step = step_of(cfg, roadmap)
    store.check_writable(cfg.runs_root, cfg.run_dir)
    store.check_files(Path(cfg.run_dir), settings.kind)
    model_cfg = network(cfg, settings.kind)
    tc = settings.train
    rt = setup_runtime(tc, cfg.runs_root)
    if tc.batch_size % rt.world:
        raise ConfigError(f"train.batch_size={tc.batch_size} must be divisible by the {rt.world} processes")
    runnable(settings, model_cfg, rt.world)
    cuda = rt.device.type == "cuda"
    precision = {"auto": "bf16" if cuda else "fp32", "mixed": "fp16" if cuda else "bf16"}.get(tc.precision,
                                                                                            tc.precision)
    channels_last = cuda if tc.channels_last == "auto" else tc.channels_last
    return Run(cfg, settings, step, roadmap, model_cfg, rt, Path(cfg.run_dir), settings.kind,
               fingerprint(cfg, model_cfg, precision), precision, channels_last, cuda_graphs(settings, rt, precision))


def network(cfg: DictConfig, kind: str) -> ModelConfig | ReferenceConfig:
    """The run's network; a drawn network is checked against its exploration (valid, within the budget), and a step
    an ablation sweep cannot build is recorded next to the sweep's runs (the report lists it with the reason) before
    its error stops the run."""
    if kind_of(kind).network == "drawn":
        return admitted(cfg)
    try:
        return model_config(cfg)
    except ConfigError as e:
        if kind_of(kind).records is not None:
            store.record(Path(cfg.run_dir), kind, {"step": cfg.step, "reason": str(e)})
        raise


def fingerprint(cfg: DictConfig, model_cfg, precision: str) -> dict:
    """What a run computes, which a run directory's checkpoint and summary must agree with to be resumed or taken
    as finished (plain JSON types): the network, the data (dataset, size, resolution, augmentation), the recipe, the
    epochs, the global batch, the cap on steps per epoch (a 5-step smoke run is not the full run) and the precision
    as trained (bf16 is not fp32). Recorded in the summary but not compared: the device, the process count,
    channels_last, torch.compile and the torch version, which change speed and rounding, not what is trained."""
    return json.loads(json.dumps({"model": dataclasses.asdict(model_cfg),
                                  "data": OmegaConf.to_container(cfg.data, resolve=True),
                                  "recipe": OmegaConf.to_container(cfg.recipe, resolve=True),
                                  "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size,
                                  "max_steps_per_epoch": cfg.train.max_steps_per_epoch, "precision": precision}))


BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)


def runnable(s: RunSettings, model_cfg: ModelConfig | ReferenceConfig, world: int) -> None:
    """What the settings imply for the network, refused in one line before anything is written: it takes the data's
    channels, a BatchNorm network trains on at least 2 images per process (one value per channel is no batch
    statistic; the training loaders never make a last partial batch), and a batch goes through it at the data's
    resolution (shapes only, on the meta device)."""
    channels = getattr(model_cfg, "in_channels", IMAGE_CHANNELS)  # reference networks take RGB
    if channels != IMAGE_CHANNELS:
        raise ConfigError(f"model.in_channels={channels}: the data gives the network {IMAGE_CHANNELS}-channel images "
                          f"(grayscale is repeated); must be {IMAGE_CHANNELS}")
    with torch.device("meta"):
        net = reference.network(model_cfg)
    batch = s.train.batch_size // world
    if batch < 2 and any(isinstance(m, BATCH_NORMS) for m in net.modules()):
        per = f" over {world} processes" if world > 1 else ""
        raise ConfigError(f"train.batch_size={s.train.batch_size}{per}: this network has BatchNorm, which needs at "
                          f"least 2 images per process in training; must be >= {2 * world}")
    r = s.data.resolution
    try:
        net.train()(torch.zeros(2, channels, r, r, device="meta"))
    except RuntimeError as e:
        why = str(e).splitlines()[0]
        raise ConfigError(f"data.resolution={r}: this network cannot take {r}x{r} images ({why})") from None


GRAPHS_BY_DEFAULT = False  # train.cuda_graphs=auto: set from the trainer's eager-vs-graph measurement on a GPU


def cuda_graphs(s: RunSettings, rt: Runtime, precision: str) -> bool:
    """train.cuda_graphs: true where the step cannot be captured is a one-line error saying why; prefer trains such
    a step eagerly and says why in one line (a sweep asks every step for graphs: the SGD step trains eager); auto is
    GRAPHS_BY_DEFAULT where it can. What the step itself rules out is named before the device."""
    why = ("only AdamW is captured, not recipe.optimizer=sgd" if s.recipe.optimizer != "adamw" else
           "data.kind=folder batches are made by workers (tensor datasets only)" if s.data.kind != "tensor" else
           "train.compile=true compiles the step instead" if s.train.compile else
           "the device is not CUDA" if rt.device.type != "cuda" else
           "DDP runs are not captured" if rt.world > 1 else
           "fp16 loss scaling syncs with the host (use bf16)" if precision == "fp16" else None)
    if s.train.cuda_graphs is True and why:
        raise ConfigError(f"train.cuda_graphs=true: {why}")
    if s.train.cuda_graphs == "prefer" and why:
        if rt.main:
            print(f"train.cuda_graphs=prefer: {why}; this run trains eager")
        return False
    return why is None and (s.train.cuda_graphs in (True, "prefer") or
                            (s.train.cuda_graphs == "auto" and GRAPHS_BY_DEFAULT))
