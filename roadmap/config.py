"""From Hydra configs to typed objects. The only module that knows both conf/ and the model."""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from contextlib import contextmanager
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError, OmegaConfBaseException

from roadmap.ablation import ablated, sweep_steps
from roadmap.errors import ConfigError
from roadmap.kinds import kind_of
from roadmap.nets.identity import network_id, switches
from roadmap.nets.model import ModelConfig
from roadmap.nets.swin import ReferenceConfig
from roadmap.settings import RunSettings, from_sections
from roadmap.steps import Roadmap, Step
from roadmap.store import run_dir
from roadmap.user_config import CONF_DIR, check_folders, read_yaml, step_file, step_parents



def _times(value, factor):
    """${times:a,b}: a x b rounded to a whole number (at least 1), e.g. a step's batch or epochs relative to the
    scale's."""
    return max(1, round(float(value) * float(factor)))


def _step_list(steps, which="all", *, _root_=None):
    """${step_list:${roadmap.steps}[,trunk]}: the roadmap's step names as a sweep list, then its reference networks
    (conf/step/<reference>.yaml includes conf/reference/<reference>.yaml); trunk = `baseline` and every adopted step
    after it, each network once (ablation.sweep_steps)."""
    if which == "trunk":
        return sweep_steps(with_parents(OmegaConf.to_container(steps, resolve=True)), _root_.roadmap.baseline)
    return ",".join([*steps.keys(), *(_root_.roadmap.get("references") or {}).keys()])


def _explore_id(model):
    """${explore_id:${model}}: the stable id of a drawn network (conf/explore)."""
    return network_id(OmegaConf.to_container(model, resolve=True))


def _run_dir(root, scale, roadmap, kind, step, seed):
    """${run_dir:root,scale,roadmap,kind,step,seed}: where the run lives (roadmap.store lays the runs out)."""
    return str(run_dir(root, scale, roadmap, kind, step, seed))


def register() -> None:
    """Make `model: base` (every ModelConfig field at its default) and the config resolvers known to Hydra."""
    defaults = {f.name: (list(f.default) if isinstance(f.default, tuple) else f.default)
                for f in dataclasses.fields(ModelConfig)}
    ConfigStore.instance().store(group="model", name="base", node=defaults)
    for name, fn in (("times", _times), ("step_list", _step_list), ("explore_id", _explore_id),
                     ("run_dir", _run_dir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def searchpath(config_dirs) -> list[str]:
    """The override that adds a user's config folders (with their own step/ and roadmap/ files) to conf/."""
    dirs = [Path(d).resolve() for d in config_dirs]
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"config dir {d} {'is a file, not a folder' if d.exists() else 'does not exist'}")
    check_folders(dirs)
    quoted = ("'file://" + str(d).replace("'", "\\'") + "'" for d in dirs)  # spaces, commas, brackets in a path
    return [f"hydra.searchpath=[{','.join(quoted)}]"] if dirs else []


@contextmanager
def _hydra(config_dirs=()):
    """Hydra initialised on conf/ (plus config_dirs), or the running app's Hydra as it is."""

    register()
    if GlobalHydra.instance().is_initialized():
        yield []
        return
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield searchpath(config_dirs)


def compose(overrides=(), config_dirs=()) -> DictConfig:
    """The config `python run.py <overrides>` would get, composed without running anything (also from inside
    the running Hydra app). Kept per process while the YAML files it reads stay as they are (Hydra reads and
    merges some twenty files per compose, about 0.1 s); each call gets its own copy."""
    sources = _sources(config_dirs)
    if sources is None:
        return _compose(tuple(overrides), tuple(config_dirs))
    files = tuple((str(p), (st := p.stat()).st_mtime_ns, st.st_size)
                  for d in sources for p in sorted(Path(d).rglob("*.yaml")))
    return copy.deepcopy(_kept(tuple(overrides), tuple(map(str, config_dirs)), files))


def _compose(overrides: tuple, config_dirs: tuple) -> DictConfig:
    with _hydra(config_dirs) as extra:
        return hydra_compose(config_name="config", overrides=[*extra, *overrides])


@functools.lru_cache(maxsize=256)
def _kept(overrides: tuple, config_dirs: tuple, files: tuple) -> DictConfig:
    """_compose, once per overrides, config dirs and state of the files read (`files` is only the key)."""
    return _compose(overrides, config_dirs)


def _sources(config_dirs) -> tuple[str, ...] | None:
    """The folders a compose reads: conf/ and config_dirs, or the running app's; None under a Hydra context that is
    not an app's (its folders are not known here, so nothing is kept)."""
    if not GlobalHydra.instance().is_initialized():
        return (str(CONF_DIR), *(str(Path(d).resolve()) for d in config_dirs))
    if not HydraConfig.initialized():
        return None
    return tuple(s.path for s in HydraConfig.get().runtime.config_sources if s.schema == "file")


def user_folders(config_dirs=()) -> list[Path]:
    """The config folders of the user's that a compose reads besides conf/: config_dirs, or the running app's."""
    sources = _sources(config_dirs) or tuple(str(Path(d).resolve()) for d in config_dirs)
    return [Path(s) for s in sources if Path(s).resolve() != CONF_DIR]


def resolved(cfg: DictConfig, key: str):
    """cfg[key] as plain values (None where it has none), or a one-line ConfigError naming the value an interpolation
    reads and cannot find (e.g. a roadmap without the `stage_ratio` that conf/step/stage_ratio.yaml reads)."""
    try:
        node = cfg[key] if key in cfg else None
        return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node
    except InterpolationKeyError as e:
        missing = re.search(r"'([^']+)'", e.msg)
        missing = missing.group(1) if missing else "?"
        if missing.startswith("roadmap."):
            name = cfg.roadmap.get("name")
            raise ConfigError(f"{e.full_key} reads ${{{missing}}}, and roadmap {name} gives no "
                              f"`{missing.split('.')[1]}`: a roadmap gives the values its steps read; add it to "
                              f"roadmap/{name}.yaml (conf/roadmap/convnext_t.yaml has them)") from None
        raise ConfigError(f"{e.full_key} reads ${{{missing}}}, which the config does not give") from None
    except InterpolationResolutionError as e:
        raise ConfigError(f"{e.full_key}: {' '.join(e.msg.split())}") from None


def default_roadmap() -> str:
    """The roadmap a run gets without `roadmap=` (conf/config.yaml's defaults list)."""
    defaults = read_yaml(CONF_DIR / "config.yaml")["defaults"]
    return next(d["roadmap"] for d in defaults if isinstance(d, dict) and "roadmap" in d)


def lineage(step: str, config_dirs=()) -> list[str]:
    """The step files a step is built from, itself first: each file's defaults list includes its parent."""
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


def included_step(step: str, config_dirs=()) -> str | None:
    """The step that step/<step>.yaml builds on (the first entry of its defaults list that names a step file), read
    from the file Hydra reads (conf/'s, else the first of the user's and the running app's config folders)."""
    path = step_file(step, user_folders(config_dirs))
    return next(iter(step_parents(read_yaml(path))), None) if path else None


def roadmap_of(cfg: DictConfig, config_dirs=(), file: str | None = None) -> Roadmap:
    """The roadmap of a config, checked whole: its fields (Roadmap.from_dict), a step file for every step and
    reference it lists, and, where the roadmap/<file>.yaml it was chosen by is known, that file's name as its name
    (its runs and roadmap.json go by it). A step's `parent` (what it is compared with) is declared once: by the
    roadmap, or, where the roadmap leaves it out, by the step file it builds on."""
    folders = user_folders(config_dirs)
    check_folders(folders)
    node = resolved(cfg, "roadmap")
    if not isinstance(node, dict):
        raise ConfigError(f"roadmap={file or '?'}: its file gives no `roadmap:` node (conf/roadmap/convnext_t.yaml "
                          f"shows one); got {node!r}")
    if file is not None and node.get("name") != file:
        raise ConfigError(f"roadmap={file}: roadmap.name is {node.get('name')!r}, not its file's name; a roadmap is "
                          f"named by its file (its runs and roadmap.json go by it): `name: {file}` in "
                          f"roadmap/{file}.yaml")
    roadmap = Roadmap.from_dict({**node, "steps": with_parents(node.get("steps"), config_dirs)})
    for name in [*roadmap.names(), *(r.name for r in roadmap.references)]:
        if step_file(name, folders) is None:
            raise ConfigError(f"roadmap {roadmap.name}: its step {name} has no step/{name}.yaml in conf/ or "
                              f"{' or '.join(map(str, folders)) or 'a config dir'}")
    return roadmap


def with_parents(steps, config_dirs=()):
    """A roadmap's `steps` node with every parent it leaves to the step files filled in (anything but a mapping of
    steps as it is, for Roadmap.from_dict to refuse)."""
    if not isinstance(steps, dict):
        return steps
    out = {name: dict(info) if isinstance(info, dict) else info if info is not None else {}
           for name, info in steps.items()}
    for name, info in out.items():
        included = None if not isinstance(info, dict) or "parent" in info else included_step(name, config_dirs)
        if included in steps:
            info["parent"] = included
    return out


def step_of(cfg: DictConfig, roadmap: Roadmap | None = None, config_dirs=()) -> Step:
    """The Step a config trains, or a one-line error. A step the roadmap does not list (a user's own) must build on
    one it does: its parent is the step its file includes, and `step_info.<name>` may give its label, section and
    reference numbers."""
    roadmap = roadmap or roadmap_of(cfg, config_dirs)
    if cfg.get("explore") is not None:  # a network drawn from the design space, named by its switches
        return Step(cfg.step, label=cfg.step, section="explore")
    if cfg.get("reference") is not None:  # a network the roadmap is compared with (roadmap.nets.swin)
        return roadmap.reference(cfg.step) or Step(cfg.step, label=cfg.step, section="reference",
                                                   parent=roadmap.endpoint.name)
    if OmegaConf.is_missing(cfg, "step"):
        raise ConfigError(f"no step given: add +step=<name>, one of {', '.join(roadmap.names())}")
    name = cfg.step
    if roadmap.get(name) is not None:
        return roadmap.get(name)
    ancestors = lineage(name, config_dirs)[1:]
    if not any(roadmap.get(a) for a in ancestors):
        raise ConfigError(f"step={name!r} is not a step of roadmap {roadmap.name} and does not build on one; its "
                          f"steps: {', '.join(roadmap.names())}")
    infos = resolved(cfg, "step_info") or {}
    info = infos.get(name) if isinstance(infos, dict) else infos
    if not isinstance(info or {}, dict):
        raise ConfigError(f"step_info: must map each step to its fields ({name}: {{label: ..., parent: ...}}); "
                          f"got {infos!r:.60}")
    info = dict(info or {})
    parent = info.setdefault("parent", ancestors[0])
    if parent not in ancestors:
        raise ConfigError(f"step_info.{name}.parent={parent!r}: the step's file builds on {ancestors[0]}")
    info.setdefault("section", (roadmap.get(parent) or Step(parent)).section)
    return Step.from_dict(name, info)


def model_config(cfg: DictConfig) -> ModelConfig | ReferenceConfig:
    """The network a run trains: its step's, the step's ablation (`kind=isolated|leave_one_out`, set by
    conf/sweep), the switches of a network drawn from the design space (`+explore=...`; roadmap.explore.space checks
    them before training), or a reference network (`+reference=...`)."""
    kind = cfg.get("kind", "roadmap")
    if cfg.get("reference") is not None:
        if kind_of(kind).network != "step":
            raise ConfigError(f"+reference={cfg.step} trains a reference network beside a roadmap's steps, not in a "
                              f"kind={kind} sweep")
        return ReferenceConfig.from_dict(resolved(cfg, "reference"))
    model = ModelConfig.from_dict(resolved(cfg, "model"))
    if kind_of(kind).network != "ablated":
        return model
    name = cfg.roadmap.name
    arch = ablated(kind, cfg.step, roadmap_of(cfg), lambda step: step_model_config(step, name))
    keep = ("num_classes", "in_channels", "width_multiplier", "drop_path")
    return dataclasses.replace(arch, **{k: getattr(model, k) for k in keep})


def load_roadmap(name: str = "convnext_t", config_dirs=()) -> Roadmap:
    """A roadmap by its conf/roadmap/<name>.yaml (or a user's config dir)."""
    try:
        cfg = compose([f"roadmap={name}"], config_dirs)
    except ConfigError:
        raise
    except Exception as e:  # Hydra's own message: for an unknown roadmap file, the roadmaps there are
        known = sorted({p.stem for d in (CONF_DIR, *map(Path, config_dirs)) for p in (d / "roadmap").glob("*.yaml")})
        if name in known:
            raise ConfigError(f"roadmap={name}: {str(e).splitlines()[0]}") from None
        raise ConfigError(f"roadmap={name!r}: no roadmap/{name}.yaml in conf/ or the config dirs; roadmaps: "
                          f"{', '.join(known)}") from None
    return roadmap_of(cfg, config_dirs, file=name)


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


# what a step may change besides the switches, as the report names it (roadmap.report.comparison.setting): the
# config's value that tells -> the setting keys it moves
TRAINING_CHANGES = {("recipe",): ("recipe",), ("train", "epochs"): ("epochs_planned",),
                    ("train", "batch_size"): ("batch_size", "steps_per_epoch"), ("train", "precision"): ("precision",)}


def step_changes(step: str, parent: str, roadmap: str, scale: str, config_dirs=()) -> list[str]:
    """What a step changes versus the step it is compared with, as the setting keys the report compares: the design
    switches, then recipe, epochs_planned, batch_size and steps_per_epoch, precision where the two steps' configs
    (composed with only the roadmap and scale, as published) differ in them. A run records it, so the report
    measures a change only where its run and its parent's differ in nothing else (a stray override, another recipe)."""
    cfgs = [compose([f"+step={name}", f"roadmap={roadmap}", f"scale={scale}"], config_dirs) for name in (step, parent)]
    mine, theirs = (switches(ModelConfig.from_dict(resolved(c, "model"))) for c in cfgs)
    out = [k for k in mine if mine[k] != theirs[k]]
    for path, keys in TRAINING_CHANGES.items():
        values = [OmegaConf.select(c, ".".join(path)) for c in cfgs]
        values = [OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig) else v for v in values]
        out += list(keys) if values[0] != values[1] else []
    return out


def validate(cfg) -> RunSettings:
    """The run's settings from its resolved config (a DictConfig or a plain dict), or a one-line ConfigError naming
    the first bad key. An interpolation that cannot be resolved is reported as the key that holds it."""
    def section(name):
        try:
            node = cfg.get(name)  # a plain value's interpolation resolves here (runs_root=${oops})
            if not isinstance(node, DictConfig):  # a plain value, a plain dict, or absent
                return node
            return OmegaConf.to_container(node, resolve=True)
        except OmegaConfBaseException as e:
            key = getattr(e, "full_key", None) or name
            raise ConfigError(f"{key}: {str(e).splitlines()[0]}") from None

    return from_sections(section)
