"""A roadmap as data: an ordered list of steps, each changing its parent, with the published numbers it reproduces.

A roadmap is written once, in `conf/roadmap/<name>.yaml` (its `roadmap:` node); the switches of each step live in
`conf/step/<name>.yaml`. This module knows no Hydra: `Roadmap.from_dict` takes the plain node, as the trainer reads it
from the composed config and as every run writes it next to its runs (`roadmap.json`), so the report needs no Hydra.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from roadmap.errors import ConfigError

ROADMAP_FIELDS = ("name", "title", "source", "dataset", "notes", "baseline", "sections", "marks", "references",
                  "steps")
STEP_FIELDS = ("parent", "label", "section", "branch", "top1", "top1_std", "top5", "gmacs")
FIELD_TYPES = (("parent", (str,), "a step's name"), ("label", (str,), "a text"), ("section", (str,), "a text"),
               ("branch", (bool,), "true or false"),
               *((key, (int, float), "a number") for key in ("top1", "top1_std", "top5", "gmacs")))


@dataclass(frozen=True)
class Step:
    """One step of a roadmap: the network its step file builds, where it sits, and the numbers it reproduces."""

    name: str  #: the conf/step/<name>.yaml that builds it
    order: int | None = None  #: position in the roadmap; None for a step the roadmap does not list (a user's own)
    parent: str | None = None  #: the step whose change it measures (None for the first)
    label: str = ""  #: text under its bar
    section: str = ""  #: group of the figure
    branch: bool = False  #: a variant the roadmap tries but does not adopt (e.g. kernel 5, 9, 11)
    top1: float | None = None  #: the published top-1 it reproduces
    top1_std: float | None = None  #: its std over seeds, where published
    top5: float | None = None
    gmacs: float | None = None  #: published multiply-adds at 224x224, in billions

    @property
    def adopted(self) -> bool:
        return not self.branch

    @classmethod
    def from_dict(cls, name: str, values, order: int | None = None) -> "Step":
        if values is not None and not isinstance(values, Mapping):
            raise ConfigError(f"step {name}: {values!r} must be a mapping of its fields ({', '.join(STEP_FIELDS)})")
        values = dict(values or {})
        unknown = sorted(set(values) - set(STEP_FIELDS))
        if unknown:
            raise ConfigError(f"step {name}: unknown field {unknown[0]!r}; a step may give {', '.join(STEP_FIELDS)}")
        for key, kinds, what in FIELD_TYPES:
            if values.get(key) is not None and (not isinstance(values[key], kinds) or
                                                (bool not in kinds and isinstance(values[key], bool))):
                raise ConfigError(f"step {name}: {key}={values[key]!r} must be {what}")
        values.setdefault("label", name)
        return cls(name=name, order=order, **values)


def _with_defaults(values, **defaults):
    """A step's fields over `defaults` (anything but a mapping as it is, for Step.from_dict to refuse)."""
    if values is None or isinstance(values, Mapping):
        return {**defaults, **(values or {})}
    return values


@dataclass(frozen=True)
class Roadmap:
    """A roadmap (conf/roadmap/<name>.yaml): its steps in order, from its baseline, with the published numbers."""

    name: str
    title: str
    steps: tuple[Step, ...]
    baseline: str
    source: str = ""  #: the publication its numbers come from
    dataset: str = ""  #: the dataset of those numbers
    sections: tuple[str, ...] = ()
    marks: tuple[dict, ...] = ()  #: published lines in the figure ({label, top1, gmacs}) of networks it does not train
    #: networks trained alike to compare with (conf/reference/<name>.yaml): label, published numbers, parent = the
    #: step compared with them (the endpoint)
    references: tuple[Step, ...] = ()
    notes: str = ""
    extra: dict = field(default_factory=dict, compare=False)  #: values its steps read (stage_ratio, ...)

    @classmethod
    def from_dict(cls, node) -> "Roadmap":
        node = dict(node)
        if not isinstance(node.get("name"), str) or not node["name"]:
            raise ConfigError(f"a roadmap needs a `name:` (its file's name); got name={node.get('name')!r} and the "
                              f"keys {', '.join(sorted(map(str, node))) or 'none'}")
        if not isinstance(node.get("steps"), Mapping) or not node["steps"]:
            raise ConfigError(f"roadmap {node['name']}: `steps:` must list its steps in order, each `<step>: "
                              f"{{<field>: <value>}}` ({', '.join(STEP_FIELDS)}); got steps={node.get('steps')!r}")
        try:
            steps = tuple(Step.from_dict(name, values, order)
                          for order, (name, values) in enumerate(dict(node["steps"]).items()))
        except ConfigError as e:
            raise ConfigError(f"roadmap {node['name']}: {e}") from None
        names = [s.name for s in steps]
        for s in steps:
            if s.parent is not None and s.parent not in names:
                raise ConfigError(f"roadmap {node['name']}: step {s.name} has parent {s.parent!r}, which the roadmap "
                                  f"does not list")
        if not any(s.adopted for s in steps):
            raise ConfigError(f"roadmap {node['name']}: every step is a branch (branch: true); its path needs at "
                              f"least one adopted step")
        if node.get("baseline") not in (None, *names):
            raise ConfigError(f"roadmap {node['name']}: baseline={node['baseline']!r} is not one of its steps: "
                              f"{', '.join(names)}")
        endpoint = [s.name for s in steps if s.adopted][-1]
        given = node.get("references") or {}
        if not isinstance(given, Mapping):
            raise ConfigError(f"roadmap {node['name']}: `references:` must map each network compared with to its "
                              f"fields; got {given!r}")
        references = tuple(Step.from_dict(name, _with_defaults(values, section="reference", parent=endpoint))
                           for name, values in given.items())
        for r in references:
            if r.name in names or r.parent not in names:
                raise ConfigError(f"roadmap {node['name']}: reference {r.name} " + (
                    "is also one of its steps" if r.name in names else
                    f"is compared with {r.parent!r}, which the roadmap does not list"))
        for key, kind, what in (("sections", list | tuple, "a list of texts"),
                                ("marks", list | tuple, "a list of {label, top1, gmacs}")):
            if node.get(key) is not None and not isinstance(node[key], kind) or \
                    key == "marks" and not all(isinstance(m, Mapping) for m in node.get(key) or ()):
                raise ConfigError(f"roadmap {node['name']}: {key}={node[key]!r} must be {what}")
        text = {k: str(node.get(k) or "") for k in ("title", "source", "dataset", "notes")}
        return cls(name=str(node["name"]), steps=steps, baseline=node.get("baseline") or names[0],
                   sections=tuple(node.get("sections") or ()), marks=tuple(dict(m) for m in node.get("marks") or ()),
                   references=references, extra={k: v for k, v in node.items() if k not in ROADMAP_FIELDS}, **text)

    def to_dict(self) -> dict:
        """The plain node again (what runs write as roadmap.json)."""
        def plain(steps):
            return {s.name: {k: getattr(s, k) for k in STEP_FIELDS if getattr(s, k) not in (None, False, "")}
                    for s in steps}

        return {"name": self.name, "title": self.title, "source": self.source, "dataset": self.dataset,
                "baseline": self.baseline, "sections": list(self.sections), "marks": list(self.marks),
                "references": plain(self.references), "notes": self.notes, **self.extra, "steps": plain(self.steps)}

    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def get(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def step(self, name: str) -> Step:
        """The step `name`, or a one-line error that lists the roadmap's steps."""
        found = self.get(name)
        if found is None:
            raise ConfigError(f"step={name!r} is not a step of roadmap {self.name}; its steps: "
                              f"{', '.join(self.names())}")
        return found

    def reference(self, name: str) -> Step | None:
        return next((r for r in self.references if r.name == name), None)

    @property
    def published_lines(self) -> list[dict]:
        """The published numbers drawn as lines across the published panel: the references', then the marks'."""
        return [*({"label": r.label, "top1": r.top1, "gmacs": r.gmacs} for r in self.references if r.top1 is not None),
                *self.marks]

    def trunk(self) -> list[Step]:
        """The adopted path: every adopted step, in order."""
        return [s for s in self.steps if s.adopted]

    @property
    def endpoint(self) -> Step:
        return self.trunk()[-1]
