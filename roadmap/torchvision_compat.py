"""torchvision's ResNets and ConvNeXts, and timm's bottleneck ResNets (ResNet-B/C/D), as roadmap networks, with their
weights."""

from __future__ import annotations

import dataclasses

import torch
from torchvision.models import ConvNeXt, ResNet
from torchvision.models.resnet import Bottleneck

from .config import step_model_config
from .model import ConfigError, RoadmapNet


def _config(tv_model):
    if isinstance(tv_model, ResNet):
        first = tv_model.layer1[0]
        if not isinstance(first, Bottleneck) or first.conv2.groups != 1 or \
                first.conv3.out_channels != 4 * first.conv1.out_channels:
            raise ConfigError("from_torchvision: only plain bottleneck ResNets (resnet50/101/152) are roadmap networks")
        depths = [len(getattr(tv_model, f"layer{i}")) for i in range(1, 5)]
        return dataclasses.replace(step_model_config("resnet50"), depths=tuple(depths),
                                   num_classes=tv_model.fc.out_features)
    if type(tv_model).__module__.startswith("timm.") and type(tv_model).__name__ == "ResNet":
        return _timm_resnet_config(tv_model)
    if isinstance(tv_model, ConvNeXt):
        stages = [m for m in tv_model.features[1::2]]
        return dataclasses.replace(step_model_config("separate_downsampling"), depths=tuple(len(s) for s in stages),
                                   width=tv_model.features[0][0].out_channels,
                                   num_classes=tv_model.classifier[-1].out_features)
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
    return dataclasses.replace(step_model_config("resnet50"), depths=depths, num_classes=m.fc.out_features,
                               stem="deep" if deep else "resnet", shortcut="avgpool" if avg else "conv")


def from_timm(timm_model) -> RoadmapNet:
    """The same pairing of state dicts as from_torchvision, for timm's ResNets."""
    if not (type(timm_model).__module__.startswith("timm.") and type(timm_model).__name__ == "ResNet"):
        raise ConfigError(f"from_timm: {type(timm_model).__name__} is not a timm ResNet")
    return from_torchvision(timm_model)


def from_torchvision(tv_model) -> RoadmapNet:
    """Both networks register their tensors in the same order (stem, blocks, head); only the shapes of 1x1 convs
    (Linear in channels-last blocks) and of layer scale differ, so the state dicts are paired in order."""
    model = RoadmapNet(_config(tv_model))
    source, target = tv_model.state_dict(), model.state_dict()
    if len(source) != len(target):
        raise ConfigError(f"from_torchvision: {len(source)} tensors in the torchvision model, {len(target)} here")
    state = {}
    for (src_name, value), (name, like) in zip(source.items(), target.items()):
        if value.numel() != like.numel() or src_name.rsplit(".", 1)[-1] != name.rsplit(".", 1)[-1]:
            raise ConfigError(f"from_torchvision: {src_name} {tuple(value.shape)} does not match "
                              f"{name} {tuple(like.shape)}")
        state[name] = value.reshape(like.shape).clone()
    model.load_state_dict(state, strict=True)
    return model.to(next(tv_model.parameters()).device)


__all__ = ["from_timm", "from_torchvision"]
