"""torchvision's ResNets and ConvNeXts, and timm's bottleneck ResNets (ResNet-B/C/D), as roadmap networks, with their
weights, paired by name: each source's module names are mapped to ours by the tables below."""

from __future__ import annotations

import dataclasses

import torch
from torchvision.models import ConvNeXt, ResNet
from torchvision.models.resnet import Bottleneck

from roadmap.nets.model import CONVNEXT_T, RESNET50, ConfigError, RoadmapNet

# Their names -> ours. A block's and a downsampling layer's names are relative to it; a name is a module's (its
# tensors keep their own names: weight, bias, running_mean, ...) or a tensor's (layer_scale).
BOTTLENECK = {"conv1": "branch.pw1", "bn1": "branch.norm_pw1", "conv2": "branch.conv_kxk", "bn2": "branch.norm_kxk",
              "conv3": "branch.pw2", "bn3": "branch.norm_pw2"}  # torchvision's and timm's ResNet blocks
RESNET_STEMS = {
    "resnet": {"conv1": "stem.conv", "bn1": "stem.norm"},
    "deep": {"conv1.0": "stem.conv1", "conv1.1": "stem.norm1", "conv1.3": "stem.conv2", "conv1.4": "stem.norm2",
             "conv1.6": "stem.conv3", "bn1": "stem.norm3"},  # timm's conv1 = (conv, bn, act, conv, bn, act, conv)
}
RESNET_SHORTCUTS = {  # a stage's first block
    "conv": {"downsample.0": "shortcut.conv", "downsample.1": "shortcut.norm"},
    "avgpool": {"downsample.1": "shortcut.conv", "downsample.2": "shortcut.norm"},  # timm: (pool or identity, conv, bn)
}
RESNET_HEAD = {"fc": "head.fc"}
CONVNEXT_STEM = {"features.0.0": "stem.conv", "features.0.1": "stem.norm"}
CONVNEXT_BLOCK = {"block.0": "branch.conv_kxk", "block.2": "branch.norm_kxk", "block.3": "branch.pw1",
                  "block.5": "branch.pw2", "layer_scale": "layer_scale"}  # block.1/6 permute, block.4 GELU
CONVNEXT_DOWNSAMPLE = {"0": "norm", "1": "conv"}
CONVNEXT_HEAD = {"classifier.0": "head.norm", "classifier.2": "head.fc"}  # classifier.1 flattens


def resnet_names(depths, stem: str = "resnet", shortcut: str = "conv") -> dict[str, str]:
    """A torchvision or timm ResNet's names -> ours: layer{i}.{j} is stages.{i-1}.{j}."""
    names = {**RESNET_STEMS[stem], **RESNET_HEAD}
    for i, depth in enumerate(depths):
        for j in range(depth):
            block = {**BOTTLENECK, **(RESNET_SHORTCUTS[shortcut] if j == 0 else {})}
            names.update({f"layer{i + 1}.{j}.{theirs}": f"stages.{i}.{j}.{ours}" for theirs, ours in block.items()})
    return names


def convnext_names(depths) -> dict[str, str]:
    """A torchvision ConvNeXt's names -> ours: features.{2i} is stage i's downsampling layer and features.{2i+1}.{j}
    its block j (stages.{i}.{j+1} after a downsampling layer: our blocks are named by their position in the stage)."""
    names = {**CONVNEXT_STEM, **CONVNEXT_HEAD}
    for i, depth in enumerate(depths):
        if i > 0:
            names.update({f"features.{2 * i}.{a}": f"stages.{i}.downsample.{b}"
                          for a, b in CONVNEXT_DOWNSAMPLE.items()})
        for j in range(depth):
            names.update({f"features.{2 * i + 1}.{j}.{a}": f"stages.{i}.{j + (i > 0)}.{b}"
                          for a, b in CONVNEXT_BLOCK.items()})
    return names


def _source(tv_model) -> tuple[object, dict[str, str]]:
    """The roadmap config equal to a source network, and its names -> ours."""
    if isinstance(tv_model, ResNet):
        first = tv_model.layer1[0]
        if not isinstance(first, Bottleneck) or first.conv2.groups != 1 or \
                first.conv3.out_channels != 4 * first.conv1.out_channels:
            raise ConfigError("from_torchvision: only plain bottleneck ResNets (resnet50/101/152) are roadmap networks")
        depths = tuple(len(getattr(tv_model, f"layer{i}")) for i in range(1, 5))
        return dataclasses.replace(RESNET50, depths=depths, num_classes=tv_model.fc.out_features), resnet_names(depths)
    if type(tv_model).__module__.startswith("timm.") and type(tv_model).__name__ == "ResNet":
        cfg = _timm_resnet_config(tv_model)
        return cfg, resnet_names(cfg.depths, cfg.stem, cfg.shortcut)
    if isinstance(tv_model, ConvNeXt):
        depths = tuple(len(s) for s in tv_model.features[1::2])
        cfg = dataclasses.replace(CONVNEXT_T, depths=depths, width=tv_model.features[0][0].out_channels,
                                  num_classes=tv_model.classifier[-1].out_features)
        return cfg, convnext_names(depths)
    raise ConfigError(f"from_torchvision: {type(tv_model).__name__} is not a torchvision ResNet or ConvNeXt")


def _timm_resnet_config(m):
    """timm's ResNet family: bottleneck blocks (stride on the 3x3), a 7x7 or deep 3x3 stem, conv or avg-pool shortcuts."""
    first = m.layer1[0]
    if type(first).__name__ != "Bottleneck" or first.conv2.groups != 1 or getattr(first, "se", None) is not None \
            or first.conv3.out_channels != 4 * first.conv1.out_channels:
        raise ConfigError("from_timm: only plain bottleneck ResNets (resnet50, resnet50d, ...) are roadmap networks")
    deep = isinstance(m.conv1, torch.nn.Sequential)
    if deep and m.conv1[0].out_channels * 2 != m.conv1[-1].out_channels:
        raise ConfigError("from_timm: a deep stem must be (width/2, width/2, width) as in resnet50d")
    avg = isinstance(m.layer2[0].downsample[0], torch.nn.AvgPool2d)
    depths = tuple(len(getattr(m, f"layer{i}")) for i in range(1, 5))
    return dataclasses.replace(RESNET50, depths=depths, num_classes=m.fc.out_features,
                               stem="deep" if deep else "resnet", shortcut="avgpool" if avg else "conv")


def _fits(a: torch.Size, b: torch.Size) -> bool:
    """The same tensor in either layout: a 1x1 conv's weight is a Linear's with two trailing 1s, a layer scale
    (C, 1, 1) or (C,)."""
    def core(shape):
        shape = list(shape)
        while shape and shape[-1] == 1:
            shape.pop()
        return shape
    return core(a) == core(b)


def convert_state_dict(source: dict, names: dict[str, str], model: RoadmapNet, who: str = "from_torchvision") -> dict:
    """A source network's state dict under our names (each tensor in our shape), checked to hold exactly `model`'s
    tensors: a source tensor without a counterpart, or one of ours without a source, is a ConfigError naming it."""
    target = model.state_dict()
    back = {ours: theirs for theirs, ours in names.items()}
    state = {}
    for key, value in source.items():
        module, tensor = key.rsplit(".", 1) if "." in key else ("", key)
        ours = names.get(key) or (f"{names[module]}.{tensor}" if module in names else None)
        if ours not in target:
            raise ConfigError(f"{who}: {key} {tuple(value.shape)} has no counterpart in the roadmap network")
        if not _fits(value.shape, target[ours].shape):
            raise ConfigError(f"{who}: {key} {tuple(value.shape)} does not fit {ours} {tuple(target[ours].shape)}")
        state[ours] = value.reshape(target[ours].shape).clone()
    for ours in target:
        if ours not in state:
            module, tensor = ours.rsplit(".", 1)
            theirs = back.get(ours) or (f"{back[module]}.{tensor}" if module in back else "?")
            raise ConfigError(f"{who}: the source network has no {theirs} (for the roadmap network's {ours})")
    return state


def from_timm(timm_model) -> RoadmapNet:
    """The same conversion as from_torchvision, for timm's ResNets."""
    if not (type(timm_model).__module__.startswith("timm.") and type(timm_model).__name__ == "ResNet"):
        raise ConfigError(f"from_timm: {type(timm_model).__name__} is not a timm ResNet")
    return _convert(timm_model, "from_timm")


def from_torchvision(tv_model) -> RoadmapNet:
    """The roadmap network equal to a torchvision ResNet or ConvNeXt, its tensors paired with ours by name."""
    return _convert(tv_model, "from_torchvision")


def _convert(source_model, who: str) -> RoadmapNet:
    cfg, names = _source(source_model)
    model = RoadmapNet(cfg)
    model.load_state_dict(convert_state_dict(source_model.state_dict(), names, model, who), strict=True)
    return model.to(next(source_model.parameters()).device)


__all__ = ["convert_state_dict", "convnext_names", "from_timm", "from_torchvision", "resnet_names"]
