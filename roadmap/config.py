"""From Hydra configs to typed objects. The only module that knows both conf/ and the model."""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError
from .model import ModelConfig
from .steps import Roadmap, Step

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def _times(value, factor):
    """${times:a,b}: a x b rounded to a whole number (at least 1), e.g. a step's batch or epochs relative to the
    scale's."""
    return max(1, round(float(value) * float(factor)))


def _step_list(steps, which="all", *, _root_=None):
    """${step_list:${roadmap.steps}[,trunk]}: the roadmap's step names as a sweep list; trunk = `baseline` and every
    adopted step after it, each network once (ablation.sweep_steps)."""
    if which == "trunk":
        from .ablation import sweep_steps

        return sweep_steps(steps, _root_.roadmap.baseline)
    return ",".join(steps.keys())


def _explore_id(model):
    """${explore_id:${model}}: the stable id of a drawn network (conf/explore)."""
    from .explore import network_id

    return network_id(OmegaConf.to_container(model, resolve=True))


def register() -> None:
    """Make `model: base` (every ModelConfig field at its default) and the config resolvers known to Hydra."""
    defaults = {f.name: (list(f.default) if isinstance(f.default, tuple) else f.default)
                for f in dataclasses.fields(ModelConfig)}
    ConfigStore.instance().store(group="model", name="base", node=defaults)
    for name, fn in (("times", _times), ("step_list", _step_list), ("explore_id", _explore_id)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def searchpath(config_dirs) -> list[str]:
    """The override that adds a user's config folders (with their own step/ and roadmap/ files) to conf/."""
    dirs = [Path(d).resolve() for d in config_dirs]
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"config dir {d} does not exist")
    return [f"hydra.searchpath=[{','.join(f'file://{d}' for d in dirs)}]"] if dirs else []


@contextmanager
def _hydra(config_dirs=()):
    """Hydra initialised on conf/ (plus config_dirs), or the running app's Hydra as it is."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register()
    if GlobalHydra.instance().is_initialized():
        yield []
        return
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield searchpath(config_dirs)


def compose(overrides=(), config_dirs=()) -> DictConfig:
    """The config `python run.py <overrides>` would get, composed without running anything (also from inside
    the running Hydra app)."""
    from hydra import compose as hydra_compose

    with _hydra(config_dirs) as extra:
        return hydra_compose(config_name="config", overrides=[*extra, *overrides])


def lineage(step: str, config_dirs=()) -> list[str]:
    """The step files a step is built from, itself first: each file's defaults list includes its parent."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    with _hydra(config_dirs) as extra:
        loader = GlobalHydra.instance().config_loader()
        try:
            tree = loader.compute_defaults_list("config", [*extra, f"+step={step}"], RunMode.RUN).defaults
        except Exception:
            raise ConfigError(f"step={step!r}: no step/{step}.yaml in conf/ or the config dirs") from None
    parent_of = {d.parent: d.config_path for d in tree
                 if d.config_path.startswith("step/") and d.parent.startswith("step/") and d.parent != d.config_path}
    chain = [f"step/{step}"]
    while chain[-1] in parent_of:
        chain.append(parent_of[chain[-1]])
    return [c.removeprefix("step/") for c in chain]


def roadmap_of(cfg: DictConfig) -> Roadmap:
    return Roadmap.from_dict(OmegaConf.to_container(cfg.roadmap, resolve=True))


def step_of(cfg: DictConfig, roadmap: Roadmap | None = None, config_dirs=()) -> Step:
    """The Step a config trains, or a one-line error. A step the roadmap does not list (a user's own) must build on
    one it does: its parent is the step its file includes, and `step_info.<name>` may give its label, section and
    reference numbers."""
    roadmap = roadmap or roadmap_of(cfg)
    if cfg.get("explore") is not None:  # a network drawn from the design space, named by its switches
        return Step(cfg.step, label=cfg.step, section="explore")
    if OmegaConf.is_missing(cfg, "step"):
        raise ConfigError(f"no step given: add +step=<name>, one of {', '.join(roadmap.names())}")
    name = cfg.step
    if roadmap.get(name) is not None:
        return roadmap.get(name)
    ancestors = lineage(name, config_dirs)[1:]
    if not any(roadmap.get(a) for a in ancestors):
        raise ConfigError(f"step={name!r} is not a step of roadmap {roadmap.name} and does not build on one; its "
                          f"steps: {', '.join(roadmap.names())}")
    infos = OmegaConf.to_container(cfg.step_info, resolve=True) if cfg.get("step_info") is not None else {}
    info = dict(infos.get(name) or {})
    parent = info.setdefault("parent", ancestors[0])
    if parent not in ancestors:
        raise ConfigError(f"step_info.{name}.parent={parent!r}: the step's file builds on {ancestors[0]}")
    info.setdefault("section", (roadmap.get(parent) or Step(parent)).section)
    return Step.from_dict(name, info)


def model_config(cfg: DictConfig) -> ModelConfig:
    """The network a run trains: its step's, the step's ablation (`ablation=isolated|leave_one_out`), or a network
    drawn from the design space (`+explore=...`)."""
    if cfg.get("explore") is not None:
        return explored_network(cfg)
    model = ModelConfig.from_dict(OmegaConf.to_container(cfg.model, resolve=True))
    kind = cfg.get("ablation")
    if kind is None:
        return model
    from .ablation import ABLATIONS, ablated

    if kind not in ABLATIONS:
        raise ConfigError(f"ablation={kind!r}: must be one of {', '.join(ABLATIONS)} (or null)")
    name = cfg.roadmap.name
    try:
        arch = ablated(kind, cfg.step, roadmap_of(cfg), lambda step: step_model_config(step, name))
    except ConfigError as e:  # the sweep's folder says why this step has no run, for the report
        from .ablation import record_invalid

        record_invalid(Path(cfg.run_dir).parent.parent, cfg.step, str(e))
        raise
    keep = ("num_classes", "in_channels", "width_multiplier", "drop_path")
    return dataclasses.replace(arch, **{k: getattr(model, k) for k in keep})


def explored_network(cfg: DictConfig) -> ModelConfig:
    """A drawn network, checked before training: an invalid combination of switches, or a network over the
    exploration's budget, is recorded in the population's rejected.jsonl and refused with a one-line error."""
    from . import explore

    raw = OmegaConf.to_container(cfg.model, resolve=True)
    try:
        model = ModelConfig.from_dict(raw)
        explore.check_budget(model, budget_gmacs(cfg), cfg.data.resolution)
    except ConfigError as e:
        explore.record_rejection(Path(cfg.run_dir), raw, str(e), cfg.explore.name)
        progress = explore.progress(Path(cfg.run_dir), cfg.explore.samples, cfg.explore.name)
        raise explore.Rejected(f"{cfg.step} rejected: {e}; {progress}") from None
    return model


def budget_gmacs(cfg: DictConfig) -> float | None:
    """explore.budget in GMACs at the scale's resolution: a number, or `endpoint` (explore.budget_factor times the
    roadmap's endpoint network at this scale's width and classes), or null (no budget)."""
    budget = cfg.explore.get("budget")  # checked by settings.ExploreConfig
    if budget is None:
        return None
    if budget != "endpoint":
        return float(budget)
    import torch

    from .model import RoadmapNet, gmacs

    end = step_model_config(roadmap_of(cfg).endpoint.name, cfg.roadmap.name, cfg.data.num_classes)
    with torch.device("meta"):
        net = RoadmapNet(dataclasses.replace(end, width_multiplier=cfg.model.width_multiplier))
    return float(cfg.explore.get("budget_factor", 1.0)) * gmacs(net, cfg.data.resolution)


def load_roadmap(name: str = "convnext_t", config_dirs=()) -> Roadmap:
    """A roadmap by its conf/roadmap/<name>.yaml (or a user's config dir)."""
    try:
        cfg = compose([f"roadmap={name}"], config_dirs)
    except ConfigError:
        raise
    except Exception:  # Hydra's own message for an unknown roadmap file
        known = sorted({p.stem for d in (CONF_DIR, *map(Path, config_dirs)) for p in (d / "roadmap").glob("*.yaml")})
        raise ConfigError(f"roadmap={name!r}: no roadmap/{name}.yaml in conf/ or the config dirs; roadmaps: "
                          f"{', '.join(known)}") from None
    return roadmap_of(cfg)


def step_model_config(step: str, roadmap: str = "convnext_t", num_classes: int = 1000,
                      config_dirs=()) -> ModelConfig:
    """The published network of a step: full width, 3x224x224 input, no stochastic depth."""
    try:
        cfg = compose([f"+step={step}", f"roadmap={roadmap}"], config_dirs)
    except Exception as e:  # Hydra's own message for an unknown step or roadmap file
        load_roadmap(roadmap, config_dirs).step(step)
        raise ConfigError(str(e).splitlines()[0]) from e
    step_of(cfg, config_dirs=config_dirs)
    return dataclasses.replace(model_config(cfg), num_classes=num_classes, width_multiplier=1.0, drop_path=0.0)
