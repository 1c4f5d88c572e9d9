"""A user's config folders (`python run.py --config-dir my_conf ...`), checked as conf/'s are: YAML errors with file
and line, a file that would shadow one of conf/'s, a step file's header, name and parents (missing or circular). Plain
YAML reading: no Hydra here, so the checks run before Hydra would misread a file."""

from __future__ import annotations

import functools
import itertools
import os
import re
from pathlib import Path

import yaml

from roadmap.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def check_folders(folders) -> None:
    """A one-line ConfigError naming the file for what Hydra would ignore or misread in a user's config folder: a YAML
    error; a file at a path conf/ has (Hydra reads conf/'s, so yours would silently not count); a step file that does
    not start with `# @package _global_`, does not name itself (`step: <its name>`), builds on a step no folder has,
    or, through its parents, on itself. Checked once per state of the files."""
    files = tuple((str(p), (st := p.stat()).st_mtime_ns, st.st_size)
                  for folder in folders for p in _config_files(Path(folder)))
    if files:
        _check_files(tuple(map(str, folders)), files)


def _config_files(folder: Path) -> list[Path]:
    """The YAML files of a config folder that Hydra may read as configs: at most two folders deep
    (group/subgroup/option.yaml), hidden folders left out."""
    found = []
    for root, dirs, files in os.walk(folder):
        depth = len(Path(root).relative_to(folder).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < 2 else []
        found += [Path(root) / f for f in sorted(files) if f.endswith(".yaml")]
    return found


@functools.lru_cache(maxsize=64)
def _check_files(folders: tuple, files: tuple) -> None:
    """check_folders, once per folders and state of their files (`files` is only the key)."""
    folders = [Path(f) for f in folders]
    for folder in folders:
        for path in _config_files(folder):
            _check_file(path, path.relative_to(folder), folders)
    for folder in folders:
        for path in sorted((folder / "step").glob("*.yaml")):
            _check_lineage(path, folders)


def _check_file(path: Path, relative: Path, folders: list[Path]) -> None:
    if (CONF_DIR / relative).is_file():
        raise ConfigError(f"{path}: conf/{relative} has this name, and Hydra reads conf/'s first, so yours would not "
                          f"count; give yours a name of its own")
    values = read_yaml(path)
    is_global = _is_global(path) and isinstance(values, dict)
    unknown = [k for k in values if k not in _top_level_keys()] if is_global else []
    if unknown:  # Hydra adds it to the config, where nothing reads it
        raise ConfigError(f"{path}: sets {unknown[0]!r}, which is no key of the config; at the top level a file of "
                          f"the _global_ package sets {', '.join(sorted(_top_level_keys()))}")
    defaults = values.get("defaults") if isinstance(values, dict) else None
    if defaults is not None and not (isinstance(defaults, list) and all(isinstance(d, str | dict) for d in defaults)):
        raise ConfigError(f"{path}: `defaults:` must be a list of the configs it builds on (`- <step>`, `- _self_`); "
                          f"got {defaults!r:.40}")
    if relative.parent != Path("step"):
        return
    if not is_global:
        raise ConfigError(f"{path}: a step file starts with `# @package _global_`, as conf/step/'s do, and sets "
                          f"`step:`, `model:`, ... at the top level")
    if values.get("step") != path.stem:
        said = f"says step: {values['step']}" if "step" in values else "has no `step:`"
        raise ConfigError(f"{path}: {said}; a step file names itself (`step: {path.stem}`), or its runs go to "
                          f"another step's folder")
    for parent in step_parents(values):
        if step_file(parent, folders) is None:
            raise ConfigError(f"{path}: builds on step {parent} (its defaults), and there is no step/{parent}.yaml "
                              f"in conf/ or {' or '.join(map(str, folders))}")


def _is_global(path: Path) -> bool:
    """Whether a config file's header says `# @package _global_` (its keys are the config's top-level keys)."""
    header = "\n".join(itertools.takewhile(lambda line: line.startswith("#") or not line.strip(),
                                           path.read_text().splitlines()))
    return re.search(r"^#\s*@package\s+_global_\s*$", header, re.M) is not None


@functools.lru_cache(maxsize=1)
def _top_level_keys() -> frozenset:
    """The config's top-level keys: conf/config.yaml's and its config groups' (conf/'s folders)."""
    return frozenset({*read_yaml(CONF_DIR / "config.yaml"), *(p.name for p in CONF_DIR.iterdir() if p.is_dir())})


def _check_lineage(path: Path, folders: list[Path]) -> None:
    """A step file whose parents lead back to itself: one line with the circle."""
    chain = [path.stem]
    while (parent := next(iter(step_parents(read_yaml(step_file(chain[-1], folders)))), None)) is not None:
        chain.append(parent)
        if parent in chain[:-1]:
            raise ConfigError(f"{path}: its defaults go round in a circle: {' -> '.join(chain)}; a step builds on "
                              f"one before it")


class _UniqueKeys(yaml.SafeLoader):
    """YAML as Hydra reads it: a key given twice in one mapping is an error (PyYAML would keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                        f"found the key {key!r} twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path):
    """A YAML file's values, or a one-line ConfigError with the file, line and column of its syntax error."""
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeys)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (UTF-8); a config file is YAML") from None
    except yaml.MarkedYAMLError as e:
        mark, context = e.problem_mark, f" ({e.context} at line {e.context_mark.line + 1})" if e.context else ""
        raise ConfigError(f"{path}: YAML error at line {mark.line + 1}, column {mark.column + 1}: "
                          f"{e.problem}{context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML error: {' '.join(str(e).split())}") from None


def step_file(name: str, folders=()) -> Path | None:
    """The step/<name>.yaml Hydra reads: conf/'s, else the first user folder's that has one; None where none has."""
    return next((p for folder in (CONF_DIR, *map(Path, folders))
                 if (p := folder / "step" / f"{name}.yaml").is_file()), None)


def step_parents(values) -> list[str]:
    """The steps a step file's defaults list includes (`- <step>` or `- /step/<step>`), in order."""
    defaults = values.get("defaults") if isinstance(values, dict) else None
    names = [d.removeprefix("/step/") for d in defaults or () if isinstance(d, str) and d != "_self_"]
    return [n for n in names if not n.startswith("/")]
