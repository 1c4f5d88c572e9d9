"""What a run is, as a registry: the roadmap's own steps, the two ablations of them, a design-space exploration. Each
kind says once where its runs live, which network a run trains, and how the report shows them; the run store, the
settings, the trainer and the report read these fields and never branch on a kind's name. A new kind is one entry
(with, for a new way of ablating or a new report section, the code that `network` or `report` names)."""

from __future__ import annotations

from dataclasses import dataclass

from roadmap.errors import ConfigError


@dataclass(frozen=True)
class Kind:
    name: str
    network: str  # "step": the step's own network; "ablated": its switches ablated (roadmap.ablation); "drawn": a
    # network drawn from the design space (roadmap.explore), which +explore=... (its settings) sets, and only it
    report: str  # the report's section for its runs: "roadmap", "ablation" or "explore"
    title: str = ""  # what the report adds to the title of its runs' section
    files: str = ""  # what the report adds to the names of its section's files
    folder: str | None = None  # its runs' folder in their group (None: the group's own folder)
    start: str | None = None  # an ablation's reference network and starting point: "baseline" or "endpoint"
    records: str | None = None  # the file beside its runs of the networks it could not build, with why
    # what a step's change is measured against, in the report's table and in its figure's footnote
    change_versus: str = "the step each one modifies"
    change_footnote: str = "the change versus the step it modifies (mean of per-seed differences)"


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("roadmap", network="step", report="roadmap"),
    Kind("isolated", network="ablated", report="ablation", title=" — isolated ablation", files="_isolated",
         folder="isolated", start="baseline", records="invalid.jsonl",
         change_versus="the baseline (the reference row): what the step's switches do on their own",
         change_footnote="the change versus the baseline, the first row (mean of per-seed differences): what the "
                         "step's switches do on their own"),
    Kind("leave_one_out", network="ablated", report="ablation", title=" — leave-one-out ablation",
         files="_leave_one_out", folder="leave_one_out", start="endpoint", records="invalid.jsonl",
         change_versus="the endpoint with every step (the reference row): what leaving the step's switches out "
                       "does (negative: the step helps)",
         change_footnote="the change versus the endpoint with every step, the first row (mean of per-seed "
                         "differences): what leaving the step's switches out does (▼: the step helps)"),
    Kind("explore", network="drawn", report="explore", title=" — design-space exploration", folder="explore"),
)}


def kind_of(name) -> Kind:
    """The kind called `name`, or a one-line ConfigError listing the kinds."""
    if name not in KINDS:
        raise ConfigError(f"kind={name!r}: must be one of {', '.join(KINDS)}")
    return KINDS[name]
