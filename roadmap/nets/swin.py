"""The networks a roadmap is compared with, trained alike (the same recipe, data, epochs, batch and seeds as its steps):
Swin Transformers built by torchvision's SwinTransformer, scaled as the roadmap's network is.

`conf/reference/<name>.yaml` gives the full-width network; at a scale the width multiplier scales the embedding
width (every stage's width with it), the heads keep their width (`head_width` channels each, at least one head, a
count that divides the stage's width), and `window_size: auto` takes the largest window of at most 7 that tiles the
stage-3 feature map (resolution / 16): 7 at 224px (Swin's own, which also tiles stage 4's 7x7), 5 at 160px, 4 at
128px, 2 at 32px, where stage 4's 1x1 map is padded to one window, as torchvision pads every map the window does not
tile.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from roadmap.errors import ConfigError

ARCHS = ("swin",)


@dataclass(frozen=True)
class ReferenceConfig:
    """A reference network, as trained: every field one line."""
    arch: str  # swin: torchvision.models.SwinTransformer (v1)
    embed_dim: int  # width of stage 1 at full width (Swin-T 96, Swin-B 128); doubles at every stage
    depths: tuple  # blocks per stage (Swin-T 2, 2, 6, 2)
    head_width: int = 32  # channels per attention head (Swin-T: 96 / 3)
    window_size: int | str = "auto"  # attention window (tokens per side); auto: see the module's docstring
    mlp_ratio: float = 4.0  # hidden width of each block's MLP, relative to its width
    patch_size: int = 4  # side of the patches the stem embeds
    resolution: int = 224  # the input side (for window_size=auto)
    num_classes: int = 1000
    width_multiplier: float = 1.0  # scales the embedding width (the scale's model.width_multiplier)
    drop_path: float = 0.0  # stochastic depth, as the recipe gives it to the steps

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ConfigError(f"reference.arch={self.arch!r}: must be one of {', '.join(ARCHS)}")
        for name in ("embed_dim", "head_width", "patch_size", "resolution", "num_classes"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"reference.{name}={value!r}: must be an integer >= 1")
        if not (isinstance(self.depths, (list, tuple)) and self.depths and
                all(isinstance(d, int) and d >= 1 for d in self.depths)):
            raise ConfigError(f"reference.depths={self.depths!r}: must be a list of integers >= 1")
        object.__setattr__(self, "depths", tuple(self.depths))
        if self.window_size != "auto" and not (isinstance(self.window_size, int) and self.window_size >= 1):
            raise ConfigError(f"reference.window_size={self.window_size!r}: must be an integer >= 1 or auto")
        if not (isinstance(self.width_multiplier, (int, float)) and self.width_multiplier > 0):
            raise ConfigError(f"reference.width_multiplier={self.width_multiplier!r}: must be a positive number")
        if not (isinstance(self.mlp_ratio, (int, float)) and self.mlp_ratio > 0):
            raise ConfigError(f"reference.mlp_ratio={self.mlp_ratio!r}: must be a positive number")
        if self.resolution % self.patch_size:
            raise ConfigError(f"reference.patch_size={self.patch_size}: must divide data.resolution="
                              f"{self.resolution}")

    @classmethod
    def from_dict(cls, values: dict) -> "ReferenceConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"reference.{unknown[0]}: unknown key; known keys: {', '.join(sorted(known))}")
        return cls(**values)

    @property
    def widths(self) -> list[int]:
        base = max(1, round(self.embed_dim * self.width_multiplier))
        return [base * 2 ** i for i in range(len(self.depths))]

    @property
    def heads(self) -> list[int]:
        """Heads per stage: width / head_width, at least 1, lowered until it divides the width."""
        out = []
        for width in self.widths:
            n = max(1, round(width / self.head_width))
            while width % n:
                n -= 1
            out.append(n)
        return out

    @property
    def window(self) -> int:
        if self.window_size != "auto":
            return self.window_size
        stage3 = max(1, self.resolution // (self.patch_size * 2 ** min(2, len(self.depths) - 1)))
        return max(w for w in range(1, 8) if stage3 % w == 0)

    def build(self) -> nn.Module:
        from torchvision.models import SwinTransformer

        return SwinTransformer(patch_size=[self.patch_size] * 2, embed_dim=self.widths[0], depths=list(self.depths),
                               num_heads=self.heads, window_size=[self.window] * 2, mlp_ratio=self.mlp_ratio,
                               stochastic_depth_prob=self.drop_path, num_classes=self.num_classes)


def network(model_cfg) -> nn.Module:
    """The module a run's network config builds: a RoadmapNet, or a reference network."""
    if isinstance(model_cfg, ReferenceConfig):
        return model_cfg.build()
    from roadmap.nets.model import RoadmapNet

    return RoadmapNet(model_cfg)
