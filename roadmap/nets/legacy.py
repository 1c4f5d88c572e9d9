"""Checkpoints from before the network's layers were named: every child of an nn.Sequential was its position
(`stages.1.2.branch.pw1.weight` was `stages.1.2.branch.3.weight`). The layers, their order and their tensors are the
same, so an old state dict loads once its keys are renamed: RoadmapNet does it on load (`rename_legacy_keys`, its
load_state_dict pre-hook), `upgrade_state_dict` for a state dict under a prefix (an EMA's) and says when it is
neither layout."""

from __future__ import annotations

from torch import nn

from roadmap.errors import ConfigError


def legacy_keys(model: nn.Module) -> dict[str, str]:
    """Every state-dict key of a network and the key the same tensor had before the layers were named: the layers,
    their order and their tensors are the same, and every child of an nn.Sequential was its position
    (`stages.1.2.branch.pw1.weight` was `stages.1.2.branch.3.weight`, `stem.norm.bias` was `stem.1.bias`)."""
    def legacy(path):
        module, out = model, []
        for name in path:
            out.append(str(list(module._modules).index(name)) if isinstance(module, nn.Sequential) else name)
            module = module._modules[name]
        return out

    return {key: ".".join([*legacy(key.split(".")[:-1]), key.rsplit(".", 1)[-1]]) for key in model.state_dict()}


def legacy_renames(model: nn.Module, keys, prefix: str) -> dict[str, str] | None:
    """Legacy key -> today's key for the given keys under prefix ({} when they are today's), None when some is
    neither."""
    new_to_old = {prefix + new: prefix + old for new, old in legacy_keys(model).items()}
    given = {k for k in keys if k.startswith(prefix)}
    if given <= new_to_old.keys():
        return {}
    old_to_new = {old: new for new, old in new_to_old.items()}
    return {k: old_to_new[k] for k in given if k not in new_to_old} if given <= old_to_new.keys() else None


def upgrade_state_dict(model: nn.Module, state: dict, prefix: str = "") -> dict:
    """`state` with the keys of a checkpoint from before the layers were named (see `legacy_keys`) renamed to
    `model`'s. `prefix`: where the network sits in the module that saved `state` ("module." for an EMA's
    AveragedModel); keys outside it stay. Loading into a RoadmapNet renames on its own; this also checks, and says
    in one line, when the keys under prefix are neither layout's."""
    renamed = legacy_renames(model, state, prefix) or {}
    upgraded = {renamed.get(k, k): v for k, v in state.items()}
    ours = {prefix + k for k in model.state_dict()}
    given = {k for k in upgraded if k.startswith(prefix)}
    if given != ours:
        legacy = {prefix + k for k in legacy_keys(model).values()}
        odd = sorted(given - ours - legacy) or sorted(given - ours)
        what = f"unexpected key {odd[0]}" if odd else f"missing key {sorted(ours - given)[0]}"
        raise ConfigError(f"state dict: {what} (neither this network's layout nor that of its checkpoints from "
                          f"before named layers); load it into the RoadmapNet of the config it was saved with")
    return upgraded


def rename_legacy_keys(model, state, prefix, *_):
    """RoadmapNet's load_state_dict pre-hook: a checkpoint from before named layers loads as it is (renamed in
    place: torch hands each module its own copy of the dict)."""
    for old, new in (legacy_renames(model, state, prefix) or {}).items():
        state[new] = state.pop(old)
