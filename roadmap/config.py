"""From Hydra configs to typed objects. The only module that knows both conf/ and the model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from .model import ConfigError, ModelConfig
from .steps import check_regime, get_step, step_names

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def register() -> None:
    """Make `model: base` (every ModelConfig field at its default) known to Hydra."""
    defaults = {f.name: (list(f.default) if isinstance(f.default, tuple) else f.default)
                for f in dataclasses.fields(ModelConfig)}
    ConfigStore.instance().store(group="model", name="base", node=defaults)


def compose(overrides: list[str] = ()) -> DictConfig:
    """The config `python run.py <overrides>` would get, composed without running anything (also from inside
    the running Hydra app)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register()
    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name="config", overrides=list(overrides))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def checked_step(cfg: DictConfig):
    """The roadmap Step the config asks for, or a one-line error."""
    regime = check_regime(cfg.regime.name)
    if OmegaConf.is_missing(cfg, "step"):
        raise ConfigError(f"no step given: add +step=<name>, one of {', '.join(step_names(regime))}")
    return get_step(cfg.step, regime)


def model_config(cfg: DictConfig) -> ModelConfig:
    """The network a run trains: its step's, or the step's ablation (`ablation=isolated|leave_one_out`)."""
    model = ModelConfig.from_dict(OmegaConf.to_container(cfg.model, resolve=True))
    kind = cfg.get("ablation")
    if kind is None:
        return model
    from .ablation import ABLATIONS, ablated

    if kind not in ABLATIONS:
        raise ConfigError(f"ablation={kind!r}: must be one of {', '.join(ABLATIONS)} (or null)")
    regime = cfg.regime.name
    arch = ablated(kind, cfg.step, regime, lambda name: step_model_config(name, regime))
    keep = ("num_classes", "in_channels", "width_multiplier", "drop_path")
    return dataclasses.replace(arch, **{k: getattr(model, k) for k in keep})


def step_model_config(step: str, regime: str = "r50", num_classes: int = 1000) -> ModelConfig:
    """The paper's network of a step: full width, 3x224x224 input, no stochastic depth."""
    try:
        cfg = compose([f"+step={step}", f"regime={regime}"])
    except Exception as e:  # Hydra's own message for an unknown step file
        check_regime(regime)
        get_step(step, regime)
        raise ConfigError(str(e).splitlines()[0]) from e
    checked_step(cfg)
    return dataclasses.replace(model_config(cfg), num_classes=num_classes, width_multiplier=1.0, drop_path=0.0)
