"""torchvision's ResNets and ConvNeXts as roadmap networks, with their weights."""

from __future__ import annotations

import dataclasses

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
    if isinstance(tv_model, ConvNeXt):
        stages = [m for m in tv_model.features[1::2]]
        return dataclasses.replace(step_model_config("separate_downsampling"), depths=tuple(len(s) for s in stages),
                                   width=tv_model.features[0][0].out_channels,
                                   num_classes=tv_model.classifier[-1].out_features)
    raise ConfigError(f"from_torchvision: {type(tv_model).__name__} is not a torchvision ResNet or ConvNeXt")


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


__all__ = ["from_torchvision"]
