"""One network for the whole roadmap, from ResNet to ConvNeXt (the paper's Section 2).

Every design decision is one field of `ModelConfig`; `RoadmapNet` reads nothing else. The model knows nothing of
Hydra, training or the roadmap's step names: a step is only a particular `ModelConfig`.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.convnext import LayerNorm2d
from torchvision.ops import Permute, StochasticDepth

from roadmap.errors import ConfigError
from roadmap.nets.legacy import rename_legacy_keys


CHOICES = {
    "stem": ("resnet", "patchify", "deep"),
    "stride_conv": ("spatial", "first"),
    "shortcut": ("conv", "avgpool"),
    "spatial_conv": ("dense", "depthwise"),
    "block": ("bottleneck", "inverted"),
    "conv_position": ("middle", "first"),
    "activation": ("relu", "gelu"),
    "activations": ("all", "one"),
    "norms": ("all", "one"),
    "norm": ("batch", "layer"),
    "downsampling": ("in_block", "separate"),
}
KERNEL_SIZES = (3, 5, 7, 9, 11)


@dataclass(frozen=True)
class ModelConfig:
    """The design space of the roadmap. Defaults are torchvision's ResNet-50."""

    depths: tuple[int, ...] = (3, 4, 6, 3)  # residual blocks per stage
    width: int = 64  # stage-1 width (bottleneck: inner width, output 4x; inverted: residual width); x2 per stage
    stem: str = "resnet"  # resnet: 7x7/2 conv + norm + act + 3x3/2 max pool; patchify: one 4x4/4 conv; deep: three
    #                       3x3 convs (width/2, width/2, width; the first stride 2), each + norm + act, then the pool
    stride_conv: str = "spatial"  # the conv that strides in a downsampling block: the spatial kxk (torchvision's,
    #                               "ResNet-B") or the block's first conv (the original ResNet's 1x1)
    shortcut: str = "conv"  # projection shortcut: conv (1x1, strided) or avgpool (2x2 average pool, then 1x1;
    #                         "ResNet-D")
    spatial_conv: str = "dense"  # the kxk conv: dense, or depthwise (groups = channels)
    block: str = "bottleneck"  # bottleneck: 1x1 d->d/4, kxk, 1x1 ->d; inverted: residual d, hidden 4d
    conv_position: str = "middle"  # kxk conv between the two 1x1 convs (middle) or before them (first: "move up")
    kernel_size: int = 3  # size of the spatial conv, odd, 3 to 11
    activation: str = "relu"  # relu or gelu, everywhere
    activations: str = "all"  # all: after every conv but the last and after the residual add; one: only the
    #                           one between the two 1x1 convs
    norms: str = "all"  # all: after every conv of a block; one: only after the spatial conv
    norm: str = "batch"  # batch (BatchNorm) or layer (LayerNorm over channels, eps 1e-6; conv biases on)
    downsampling: str = "in_block"  # in_block: stride 2 in the first block of a stage + projection shortcut;
    #                                 separate: norm + 2x2/2 conv between stages, norm after stem and after pooling
    zero_init_residual: bool = False  # the last norm of every residual branch starts at zero ("zero gamma")
    layer_scale: float | None = None  # initial value of the per-channel residual scale gamma; None: off
    drop_path: float = 0.0  # stochastic depth rate of the last block, linear from 0 over the blocks
    grn: bool = False  # ConvNeXt V2 global response norm after the activation between the 1x1 convs
    num_classes: int = 1000  # classifier outputs
    in_channels: int = 3  # image channels
    width_multiplier: float = 1.0  # scales every width (for small proxy scales; not a roadmap switch)

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"model.{name}={value!r}: must be one of {', '.join(allowed)}")
        depths = self.depths
        if not isinstance(depths, (list, tuple)) or not depths or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in depths):
            raise ConfigError(f"model.depths={depths!r}: must be a non-empty list of positive integers")
        object.__setattr__(self, "depths", tuple(depths))
        for name in ("width", "num_classes", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"model.{name}={value!r}: must be a positive integer")
        if self.kernel_size not in KERNEL_SIZES:
            raise ConfigError(f"model.kernel_size={self.kernel_size!r}: must be one of {KERNEL_SIZES}")
        if not (isinstance(self.width_multiplier, (int, float)) and self.width_multiplier > 0):
            raise ConfigError(f"model.width_multiplier={self.width_multiplier!r}: must be a positive number")
        if self.layer_scale is not None and not (isinstance(self.layer_scale, (int, float)) and self.layer_scale > 0):
            raise ConfigError(f"model.layer_scale={self.layer_scale!r}: must be a positive number or null (off)")
        if not (isinstance(self.drop_path, (int, float)) and 0 <= self.drop_path < 1):
            raise ConfigError(f"model.drop_path={self.drop_path!r}: must be a number in [0, 1)")
        for name in ("grn", "zero_init_residual"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model.{name}={getattr(self, name)!r}: must be true or false")
        if self.activations == "one" and self.conv_position != "first":
            raise ConfigError("model.activations='one' keeps the activation between the two 1x1 convs, "
                              "which needs model.conv_position='first'")
        if self.zero_init_residual and self.norms != "all":
            raise ConfigError("model.zero_init_residual=true zeroes the norm after the branch's last conv, which "
                              "needs model.norms='all'")
        if (self.stride_conv == "first" and self.conv_position == "middle" and self.norm == "layer"
                and self.downsampling == "in_block"):
            raise ConfigError("model.stride_conv='first' strides the first 1x1 conv, which LayerNorm networks run as "
                              "a Linear layer: it needs model.norm='batch' (or conv_position='first')")
        if self.grn and (self.conv_position != "first" or self.layer_scale is not None or self.norm != "layer"):
            raise ConfigError("model.grn=true sits between the two 1x1 convs on channels-last features and replaces "
                              "layer scale: it needs model.conv_position='first', model.norm='layer' and "
                              "model.layer_scale=null")

    @classmethod
    def from_dict(cls, values) -> "ModelConfig":
        """Build from a plain mapping (e.g. a Hydra node), rejecting unknown fields by name."""
        if not isinstance(values, Mapping):  # `model: 5` in a user's step file
            raise ConfigError(f"model={values!r}: must be a mapping of the network's fields")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"model.{unknown[0]}: unknown field; known fields: {', '.join(sorted(known))}")
        values = dict(values)
        if "depths" in values and not isinstance(values["depths"], (str, int)):
            values["depths"] = tuple(values["depths"])
        return cls(**values)

    def stage_widths(self) -> list[int]:
        """Output channels of every stage."""
        base = max(1, round(self.width * self.width_multiplier))
        expansion = 4 if self.block == "bottleneck" else 1
        return [expansion * base * 2**i for i in range(len(self.depths))]

    @property
    def stem_width(self) -> int:
        return max(1, round(self.width * self.width_multiplier))


# The roadmap's endpoints (its first and last steps, `conf/step/resnet50.yaml` and `separate_downsampling.yaml`).
RESNET50 = ModelConfig()  # torchvision's resnet50
CONVNEXT_T = ModelConfig(depths=(3, 3, 9, 3), width=96, stem="patchify", spatial_conv="depthwise", block="inverted",
                         conv_position="first", kernel_size=7, activation="gelu", activations="one", norms="one",
                         norm="layer", downsampling="separate", layer_scale=1e-6)  # torchvision's convnext_tiny


# Layouts: "cf" = channels first (N, C, H, W), what convs and BatchNorm need; "cl" = channels last (N, H, W, C), where
# LayerNorm and Linear run without permutes. A LayerNorm network runs its 1x1 convs as Linear layers in "cl".


def _act(cfg: ModelConfig) -> nn.Module:
    return nn.ReLU(inplace=True) if cfg.activation == "relu" else nn.GELU()


def _norm(cfg: ModelConfig, channels: int, layout: str = "cf") -> nn.Module:
    if cfg.norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.LayerNorm(channels, eps=1e-6) if layout == "cl" else LayerNorm2d(channels, eps=1e-6)


class GRN(nn.Module):
    """Global response normalization of ConvNeXt V2, on channels-last input."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        gx = torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


def _branch(cfg: ModelConfig, in_dim: int, out_dim: int, stride: int) -> nn.Sequential:
    """A block's residual branch, its layers named as Block says."""
    hidden = out_dim // 4 if cfg.block == "bottleneck" else out_dim * 4
    channels_last = cfg.norm == "layer"
    spatial = ("kxk", None)
    if cfg.conv_position == "middle":
        convs = [("pw1", (in_dim, hidden)), spatial, ("pw2", (hidden, out_dim))]
    else:
        convs = [spatial, ("pw1", (in_dim, hidden)), ("pw2", (hidden, out_dim))]

    layers, layouts = OrderedDict(), []

    def add(name, module, layout):
        if (layouts[-1] if layouts else "cf") != layout:  # the block's input is channels first
            permute(layout)
        layers[name] = module
        layouts.append(layout)

    def permute(layout):
        name = f"to_{layout}"
        name += str(sum(n.startswith(name) for n in layers) + 1) if name in layers else ""
        layers[name] = Permute([0, 2, 3, 1] if layout == "cl" else [0, 3, 1, 2])

    strided = 0 if cfg.stride_conv == "first" else [role for role, _ in convs].index("kxk")
    channels = in_dim
    for i, (role, dims) in enumerate(convs):
        has_norm = cfg.norms == "all" or role == "kxk"
        bias = not (has_norm and cfg.norm == "batch")
        s = stride if i == strided else 1
        if role == "kxk":
            groups = channels if cfg.spatial_conv == "depthwise" else 1
            add("conv_kxk", nn.Conv2d(channels, channels, cfg.kernel_size, s, cfg.kernel_size // 2,
                                      groups=groups, bias=bias), "cf")
            layout = "cf"
        else:
            layout = "cl" if channels_last and s == 1 else "cf"
            channels = dims[1]
            add(role, nn.Linear(dims[0], channels, bias=bias) if layout == "cl"
                else nn.Conv2d(dims[0], channels, 1, s, bias=bias), layout)
        if has_norm:
            layout = "cl" if channels_last else "cf"
            add(f"norm_{role}", _norm(cfg, channels, layout), layout)
        is_last = i == len(convs) - 1
        if not is_last and (cfg.activations == "all" or i == 1):
            add(f"act_{role}", _act(cfg), layout)
        if cfg.grn and i == 1:
            add("grn", GRN(channels), "cl")
    if layouts[-1] == "cl":
        permute("cf")
    return nn.Sequential(layers)


class Block(nn.Module):
    """One residual block: three convs (two 1x1 and one kxk spatial), each optionally followed by norm and act.

    Its layers are named by the conv they belong to, the same in every layout (bottleneck or inverted, kxk conv in
    the middle or first): `branch` holds `conv_kxk` (the spatial conv, dense or depthwise), `pw1` and `pw2` (the 1x1
    convs, in that order; Linear layers where they run channels last), each one's norm `norm_kxk`, `norm_pw1`,
    `norm_pw2` and activation `act_kxk`, `act_pw1` where the config has them, `grn` after `act_pw1`, and the permutes
    `to_cl` / `to_cf` (numbered `to_cl2`, ... when there are more). The block's own `layer_scale`, `shortcut` (`pool`,
    `conv`, `norm`; identity when the shape stays), `drop_path` and `post_act` (after the residual add) follow.
    ResNet-50's block reads pw1, norm_pw1, act_pw1, conv_kxk, norm_kxk, act_kxk, pw2, norm_pw2; ConvNeXt's
    conv_kxk, to_cl, norm_kxk, pw1, act_pw1, pw2, to_cf."""

    def __init__(self, cfg: ModelConfig, in_dim: int, out_dim: int, stride: int, drop_path: float):
        super().__init__()
        branch = _branch(cfg, in_dim, out_dim, stride)
        if cfg.layer_scale is not None:
            self.layer_scale = nn.Parameter(torch.full((out_dim, 1, 1), float(cfg.layer_scale)))
        else:
            self.layer_scale = None
        self.branch = branch
        self.shortcut = nn.Identity()
        if stride != 1 or in_dim != out_dim:
            pool = cfg.shortcut == "avgpool" and stride > 1
            shortcut = OrderedDict(pool=nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)) \
                if pool else OrderedDict()
            shortcut["conv"] = nn.Conv2d(in_dim, out_dim, 1, 1 if pool else stride, bias=cfg.norm != "batch")
            shortcut["norm"] = _norm(cfg, out_dim)
            self.shortcut = nn.Sequential(shortcut)
        self.drop_path = StochasticDepth(drop_path, "row")
        self.post_act = _act(cfg) if cfg.activations == "all" else nn.Identity()

    def forward(self, x):
        out = self.branch(x)
        if self.layer_scale is not None:
            out = self.layer_scale * out
        out = self.drop_path(out)
        out += self.shortcut(x)  # in place, as torchvision does: one allocation less per block
        return self.post_act(out)


class RoadmapNet(nn.Module):
    """stem -> stages (optional downsampling layer + blocks) -> head, as in the paper's Figure 2.

    Layer names: `stem` holds `conv`, `norm`, `act`, `pool` (the deep stem `conv1`, `norm1`, `act1` ... `act3`,
    `pool`; patchify `conv` and, with separate downsampling, `norm`); `stages.{i}` holds the stage's `downsample`
    (`norm`, `conv`; separate downsampling only) and its blocks, named by their position in the stage (so a stage
    with a downsampling layer numbers its blocks from 1 and `stages[i][j]` is `stages.i.j`); `head` holds `pool`,
    `flatten`, `norm` (separate downsampling only) and `fc`. Checkpoints from before the names (every layer numbered)
    still load: see `legacy_keys`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        widths = cfg.stage_widths()
        separate = cfg.downsampling == "separate"
        stem_width = cfg.stem_width
        bias = cfg.norm != "batch"
        if cfg.stem == "resnet":
            self.stem = nn.Sequential(OrderedDict(conv=nn.Conv2d(cfg.in_channels, stem_width, 7, 2, 3, bias=bias),
                                                  norm=_norm(cfg, stem_width), act=_act(cfg),
                                                  pool=nn.MaxPool2d(3, 2, 1)))
        elif cfg.stem == "deep":
            half = max(1, stem_width // 2)
            convs = [(cfg.in_channels, half, 2), (half, half, 1), (half, stem_width, 1)]
            self.stem = nn.Sequential(OrderedDict([(f"{kind}{n}", layer) for n, (a, b, s) in enumerate(convs, 1)
                                                   for kind, layer in (("conv", nn.Conv2d(a, b, 3, s, 1, bias=bias)),
                                                                       ("norm", _norm(cfg, b)), ("act", _act(cfg)))]
                                                  + [("pool", nn.MaxPool2d(3, 2, 1))]))
        else:
            stem = OrderedDict(conv=nn.Conv2d(cfg.in_channels, stem_width, 4, 4,
                                              bias=not (separate and cfg.norm == "batch")))
            if separate:
                stem["norm"] = _norm(cfg, stem_width)
            self.stem = nn.Sequential(stem)

        rates = torch.linspace(0, cfg.drop_path, sum(cfg.depths), device="cpu").tolist()
        stages, in_dim, b = [], stem_width, 0
        for i, (depth, out_dim) in enumerate(zip(cfg.depths, widths)):
            layers = OrderedDict()
            stride = 1 if i == 0 else 2
            if separate and i > 0:
                layers["downsample"] = nn.Sequential(OrderedDict(norm=_norm(cfg, in_dim),
                                                                 conv=nn.Conv2d(in_dim, out_dim, 2, 2)))
                in_dim, stride = out_dim, 1
            for j in range(depth):
                layers[str(len(layers))] = Block(cfg, in_dim, out_dim, stride if j == 0 else 1, rates[b])
                in_dim, b = out_dim, b + 1
            stages.append(nn.Sequential(layers))
        self.stages = nn.Sequential(*stages)
        head = OrderedDict(pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(1))
        if separate:
            head["norm"] = nn.LayerNorm(in_dim, eps=1e-6) if cfg.norm == "layer" else nn.BatchNorm1d(in_dim)
        head["fc"] = nn.Linear(in_dim, cfg.num_classes)
        self.head = nn.Sequential(head)
        self.apply(self._init_batch if cfg.norm == "batch" else self._init_layer)
        if cfg.zero_init_residual:  # every block starts as its shortcut (norms="all": pw2, the last conv, has one)
            for block in self.modules():
                if isinstance(block, Block):
                    nn.init.zeros_(block.branch.norm_pw2.weight)
        self.register_load_state_dict_pre_hook(rename_legacy_keys)

    @staticmethod
    def _init_batch(m):
        """torchvision's ResNet init."""
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @staticmethod
    def _init_layer(m):
        """ConvNeXt's init: truncated normal (std 0.02) conv and linear weights, zero biases."""
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


def gmacs(model: nn.Module, resolution: int = 224, in_channels: int = 3) -> float:
    """Multiply-adds (conv + linear) of one image, in billions, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.zeros(1, in_channels, resolution, resolution, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9


def num_params(model: nn.Module) -> int:
    """The number of parameters of a network, trainable or not."""
    return sum(p.numel() for p in model.parameters())


