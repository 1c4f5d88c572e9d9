"""Experiment tracking: nothing (default) or Weights & Biases, which never needs an account in offline mode."""

from __future__ import annotations

import os

from omegaconf import OmegaConf

from roadmap.errors import ConfigError


class NoTracker:
    def log(self, metrics: dict) -> None:
        pass

    def finish(self, summary: dict) -> None:
        pass


class WandbTracker:
    """Config, per-epoch metrics and the summary; the sweep is the group and the step a tag."""

    def __init__(self, cfg, step):
        wandb = import_wandb()

        mode = os.environ.get("WANDB_MODE") or cfg.logger.mode  # logger.mode is checked by roadmap.settings
        if mode not in ("online", "offline", "disabled"):
            raise ConfigError(f"WANDB_MODE={mode!r}: must be one of online, offline, disabled")
        if mode == "online" and not logged_in(wandb):
            raise ConfigError("logger.mode=online needs `wandb login` or WANDB_API_KEY; logger.mode=offline "
                              "needs no account")
        self.run = wandb.init(project=cfg.logger.project, entity=cfg.logger.entity, mode=mode,
                              group=cfg.logger.group, name=f"{step.name}-seed{cfg.seed}", dir=str(cfg.run_dir),
                              tags=[step.name, cfg.roadmap.name, cfg.scale.name],
                              config=OmegaConf.to_container(cfg, resolve=True), reinit="finish_previous")

    def log(self, metrics: dict) -> None:
        self.run.log(metrics, step=metrics["epoch"])

    def finish(self, summary: dict) -> None:
        self.run.summary.update({k: v for k, v in summary.items() if k != "fingerprint"})
        self.run.finish()


def import_wandb():
    try:
        import wandb
    except ImportError:
        raise ConfigError("logger=wandb needs the wandb package: pip install -e '.[wandb]'") from None
    return wandb


def logged_in(wandb) -> bool:
    """Whether wandb has an account to log to (WANDB_API_KEY or `wandb login`), asked without a prompt or a line of
    its own (wandb.api.api_key printed a deprecation warning before the error line)."""
    return bool(os.environ.get("WANDB_API_KEY")) or wandb.login(prompt=False, verify=False)


def make_tracker(cfg, step, main_process: bool):
    """logger=none (or a process but the main one): nothing; logger=wandb (the only other, as settings checks)."""
    if cfg.logger.name == "none" or not main_process:
        return NoTracker()
    return WandbTracker(cfg, step)
