"""Typed, self-validating settings of a run (train, eval, data, recipe, scale, logger, explore, seed), as `ModelConfig`
is for the network: every value a user can set is checked when the run's config is built, and a bad one is
refused in one line naming the key and what is allowed, before anything is written.

Each field declares its rule as data (`rule(...)` in the field's metadata); `Settings.__post_init__` applies them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from roadmap.errors import ConfigError
from roadmap.kinds import kind_of

PRECISIONS = ("auto", "mixed", "bf16", "fp16", "fp32")
IMAGE_CHANNELS = 3  # what every loader gives the network (roadmap.data decodes RGB and repeats grayscale channels)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b  # 1 is not True, "true" is not True


@dataclass(frozen=True)
class Rule:
    """What a field allows: a kind of value, a range, choices, null or not."""
    kind: str  # int, num, bool, str, choice, numbers, fractions (increasing numbers), mapping, randaugment, budget
    low: float | None = None  # inclusive unless low_open
    high: float | None = None  # inclusive unless high_open
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    null: bool = False  # None (yaml null) allowed
    auto: bool = False  # the string "auto" allowed (the program chooses)

    def describe(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in self.choices)
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "str":
            text = "a string"
        elif self.kind == "mapping":
            text = "a mapping"
        elif self.kind == "randaugment":
            text = "{num_ops: integer >= 0, magnitude: integer 0..30}"
        elif self.kind == "budget":
            text = "a positive number of GMACs, endpoint"
        else:
            noun = {"int": "an integer", "num": "a number", "numbers": "a list of numbers",
                    "fractions": "an increasing list of numbers"}[self.kind]
            text = noun + self._range()
        return text + (" or null" if self.null else "") + (" or auto" if self.auto else "")

    def _range(self) -> str:
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            return f" in {'(' if self.low_open else '['}{lo:g}, {hi:g}{')' if self.high_open else ']'}"
        if lo is not None:
            return f" {'>' if self.low_open else '>='} {lo:g}"
        if hi is not None:
            return f" {'<' if self.high_open else '<='} {hi:g}"
        return ""

    def in_range(self, v) -> bool:
        return ((self.low is None or (v > self.low if self.low_open else v >= self.low))
                and (self.high is None or (v < self.high if self.high_open else v <= self.high)))

    def accepts(self, v) -> bool:
        if v is None:
            return self.null
        if self.auto and v == "auto":
            return True
        if self.kind == "int":
            return _is_int(v) and self.in_range(v)
        if self.kind == "num":
            return _is_num(v) and self.in_range(v)
        if self.kind == "bool":
            return isinstance(v, bool)
        if self.kind == "str":
            return isinstance(v, str) and v != ""
        if self.kind == "choice":
            return any(_same(v, c) for c in self.choices)
        if self.kind in ("numbers", "fractions"):
            ok = isinstance(v, (list, tuple)) and all(_is_num(x) and self.in_range(x) for x in v)
            return ok and (self.kind == "numbers" or all(a < b for a, b in zip(v, v[1:])))
        if self.kind == "budget":
            return v == "endpoint" or (_is_num(v) and v > 0)
        if self.kind == "mapping":
            return isinstance(v, dict)
        if self.kind == "randaugment":
            return (isinstance(v, dict) and set(v) == {"num_ops", "magnitude"} and _is_int(v["num_ops"])
                    and v["num_ops"] >= 0 and _is_int(v["magnitude"]) and 0 <= v["magnitude"] <= 30)
        raise AssertionError(self.kind)


def rule(kind: str, default=dataclasses.MISSING, **kwargs):
    """A dataclass field with its rule."""
    return field(default=default, metadata={"rule": Rule(kind, **kwargs)})


def choice(*choices, default=dataclasses.MISSING, null=False):
    return rule("choice", default, choices=choices, null=null)


class Settings:
    """Base of the typed sections: checks every field's rule, rejects unknown keys by name."""
    section = ""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, r = getattr(self, f.name), f.metadata["rule"]
            if not r.accepts(value):
                raise ConfigError(f"{self.section}.{f.name}={value!r}: must be {r.describe()}")
            if r.kind == "randaugment" and value is not None:
                object.__setattr__(self, f.name, RandAugment(**value))
            elif r.kind in ("numbers", "fractions"):  # as floats: torch's AdamW takes no integer betas
                object.__setattr__(self, f.name, tuple(map(float, value)))
            elif r.kind == "num" and value is not None:  # recipe.mixup=2 is 2.0 (torch's Beta takes no integer)
                object.__setattr__(self, f.name, float(value))

    @classmethod
    def from_dict(cls, values: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{cls.section}.{unknown[0]}: unknown key; known keys: {', '.join(sorted(known))}")
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        for name in required:
            if name not in values:
                raise ConfigError(f"{cls.section}.{name} is required")
        return cls(**values)


@dataclass(frozen=True)
class RandAugment:
    num_ops: int
    magnitude: int


@dataclass(frozen=True)
class TrainConfig(Settings):
    section = "train"
    epochs: int = rule("int", low=1)
    batch_size: int = rule("int", low=1)  # global, over all processes
    device: str = choice("auto", "cuda", "mps", "cpu", default="auto")
    precision: str = choice(*PRECISIONS, default="auto")
    channels_last: str | bool = choice("auto", True, False, default="auto")
    compile: bool = rule("bool", False)
    cuda_graphs: str | bool = choice("auto", "prefer", True, False, default="auto")  # the step as one CUDA graph
    overwrite: bool = rule("bool", False)
    workers: int = rule("int", 8, low=0)
    threads: int | str = rule("int", "auto", low=1, auto=True)  # intra-op CPU threads; auto: OMP_NUM_THREADS, else
    #                                                              the cores this process may use / its local ranks
    max_steps_per_epoch: int | None = rule("int", None, low=1, null=True)
    progress: str | bool = choice("auto", True, False, default="auto")


@dataclass(frozen=True)
class EvalConfig(Settings):
    section = "eval"
    robustness: bool = rule("bool", True)  # after training: top-1 on corrupted images (roadmap.train.robustness)
    robustness_images: int = rule("int", 1000, low=1)  # how many validation images it corrupts


@dataclass(frozen=True)
class DataConfig(Settings):
    section = "data"
    name: str = rule("str")
    kind: str = choice("tensor", "folder")
    num_classes: int = rule("int", low=2)  # one class is no classification (top-1 100% by construction)
    resolution: int = rule("int", low=8)
    mean: tuple = rule("numbers")
    std: tuple = rule("numbers", low=0, low_open=True)
    root: str | None = rule("str", None, null=True)
    download: bool = rule("bool", False)
    crop_padding: int = rule("int", 0, low=0)  # at most resolution / 2: every random crop keeps half the image
    train_size: int | None = rule("int", None, low=1, null=True)  # synthetic: as many; other tensor data: the first N
    val_size: int | None = rule("int", None, low=1, null=True)
    eval_crop: float = rule("num", 0.875, low=0, high=1, low_open=True)  # folder data: resize to resolution/crop
    decode: str = choice("cpu", "gpu", default="cpu")
    bad_images: str = choice("warn", "error", default="warn")

    def __post_init__(self):
        super().__post_init__()
        if self.kind == "folder" and self.root in (None, "???"):
            raise ConfigError(f"data.root is required for data={self.name}: data.root=/path/to/dataset")
        if len(self.mean) != len(self.std):
            raise ConfigError(f"data.mean has {len(self.mean)} values and data.std {len(self.std)}: one per channel")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != IMAGE_CHANNELS:
                raise ConfigError(f"data.{name}={list(values)!r}: must be {IMAGE_CHANNELS} numbers, one per channel of "
                                  f"the images the network sees (grayscale data is repeated to {IMAGE_CHANNELS})")
        if self.crop_padding > self.resolution // 2:
            raise ConfigError(f"data.crop_padding={self.crop_padding}: must be <= {self.resolution // 2} at "
                              f"data.resolution={self.resolution} (half the image: every random crop keeps at least "
                              f"half of it)")


@dataclass(frozen=True)
class RecipeConfig(Settings):
    section = "recipe"
    name: str = rule("str")
    optimizer: str = choice("adamw", "sgd")
    lr: float = rule("num", low=0, low_open=True)
    lr_batch: int = rule("int", low=1)
    betas: tuple = rule("numbers", (0.9, 0.999), low=0, high=1, high_open=True)
    momentum: float = rule("num", 0.9, low=0, high=1, high_open=True)
    weight_decay: float = rule("num", 0.0, low=0)
    decay_norm_and_bias: bool = rule("bool", False)
    schedule: str = choice("cosine", "step", default="cosine")
    warmup: float = rule("num", 0.0, low=0, high=1, high_open=True)  # fraction of training
    min_lr: float = rule("num", 0.0, low=0)
    milestones: tuple = rule("fractions", (), low=0, high=1, low_open=True, high_open=True)
    gamma: float = rule("num", 0.1, low=0, high=1, low_open=True)
    randaugment: RandAugment | None = rule("randaugment", None, null=True)
    mixup: float = rule("num", 0.0, low=0)
    cutmix: float = rule("num", 0.0, low=0)
    erasing: float = rule("num", 0.0, low=0, high=1)
    label_smoothing: float = rule("num", 0.0, low=0, high=1, high_open=True)
    drop_path: float = rule("num", 0.0, low=0, high=1, high_open=True)
    ema: float | None = rule("num", None, low=0, high=1, low_open=True, high_open=True, null=True)
    grad_clip: float | None = rule("num", None, low=0, low_open=True, null=True)

    def __post_init__(self):
        super().__post_init__()
        if len(self.betas) != 2:
            raise ConfigError(f"recipe.betas={list(self.betas)!r}: must be two numbers in [0, 1)")


@dataclass(frozen=True)
class ScaleConfig(Settings):
    section = "scale"
    name: str = rule("str")
    epochs: int = rule("int", low=1)
    batch_size: int = rule("int", low=1)
    explore_steps: int | None = rule("int", None, low=1, null=True)


@dataclass(frozen=True)
class LoggerConfig(Settings):
    section = "logger"
    name: str = choice("none", "wandb")
    project: str = rule("str", "roadmap")
    entity: str | None = rule("str", None, null=True)
    mode: str = choice("online", "offline", "disabled", default="offline")
    group: str | None = rule("str", None, null=True)


@dataclass(frozen=True)
class ExploreConfig(Settings):
    section = "explore"
    name: str = rule("str")
    samples: int = rule("int", low=1)
    budget: float | str | None = rule("budget", None, null=True)  # GMACs at the scale's resolution
    budget_factor: float = rule("num", 1.0, low=0, low_open=True)
    epoch_factor: float = rule("num", 0.5, low=0, low_open=True)
    sampler_seed: int = rule("int", 0, low=0)
    sampler: str | None = choice("random", "tpe", "gp", default=None, null=True)
    startup_trials: int = rule("int", 12, low=0)
    space: dict | None = rule("mapping", None, null=True)  # checked in full by roadmap.explore.space.check_space

    def __post_init__(self):
        super().__post_init__()
        if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", self.name):  # its journal's file name
            raise ConfigError(f"explore.name={self.name!r}: must be a file name (letters, digits, _, - and ., not "
                              f"starting with .)")


@dataclass(frozen=True)
class RunSettings:
    """Every section of one run, checked."""
    seed: int
    kind: str  # what the run is (roadmap.kinds.KINDS): a roadmap step, an ablation's network, a drawn network
    train: TrainConfig
    eval: EvalConfig
    data: DataConfig
    recipe: RecipeConfig
    scale: ScaleConfig
    logger: LoggerConfig
    explore: ExploreConfig | None


def differences(old: dict, new: dict, prefix="") -> list[str]:
    """What differs between two nested records of settings (a run's fingerprint, a study's settings), one
    "key.path: old -> new" each, in key order."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} -> {b}")
    return out


def from_sections(section) -> RunSettings:
    """The run's settings from `section(name)`, which gives a top-level section of the resolved config as plain
    values (None where absent; roadmap.config.validate reads them from Hydra's config), or a one-line ConfigError
    naming the first bad key."""
    seed = section("seed")
    if not (_is_int(seed) and seed >= 0):
        raise ConfigError(f"seed={seed!r}: must be an integer >= 0")
    check_runs_root(section("runs_root"))
    scale = ScaleConfig.from_dict(section("scale"))  # first: train's epochs and batch come from it
    explore = section("explore")
    kind = _kind(section("kind"), explore)
    return RunSettings(seed, kind, TrainConfig.from_dict(section("train")), EvalConfig.from_dict(section("eval") or {}),
                       DataConfig.from_dict(section("data")),
                       RecipeConfig.from_dict(section("recipe")), scale, LoggerConfig.from_dict(section("logger")),
                       None if explore is None else ExploreConfig.from_dict(explore))


def check_runs_root(root) -> None:
    """A one-line ConfigError where runs_root is no folder's path: null, or empty (an unset shell variable), which
    is not taken as the current folder."""
    if not (isinstance(root, str | int) and not isinstance(root, bool) and str(root).strip()):
        raise ConfigError(f"runs_root={root!r}: must be a folder's path (runs_root=. for the current folder)")


def _kind(kind, explore) -> str:
    if (kind_of(kind).network == "drawn") != (explore is not None):
        why = ("an exploration's runs are kind=explore (+explore=... sets it)" if explore is not None else
               "needs +explore=... (the exploration's settings)")
        raise ConfigError(f"kind={kind}: {why}")
    return kind
