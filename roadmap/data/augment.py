"""Per-image random augmentation of a whole uint8 batch on the training device, with batched tensor ops.

A torchvision v2 transform draws one set of random parameters per call; here every image of the batch draws its
own crop offset, flip, RandAugment ops and erase box, all from the given torch.Generator (never the global RNG),
so the same generator seed gives the same batch. No Python loop runs over images. A RandAugment round is three
batched passes: the five geometric ops are one grid_sample with each image's own sampling grid (torchvision's grids,
so the pixels are torchvision's), three colour ops (Brightness, Color, Contrast) one blend with each image's own
factor and degenerate image, and the five others (Sharpness, Posterize, Solarize, AutoContrast, Equalize) one
torchvision call per (op, sign) on their images. Each image's result equals torchvision's for its own draws.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2.functional import _geometry

F = v2.functional

# RandAugment reuses torchvision's own op table (magnitude functions, signed flags) and its op kernel
# (`_apply_image_or_video_transform` of a v2.RandAugment instance: NEAREST interpolation, fill 0), so each image
# gets exactly what torchvision gives for that op and sign.
_RA = v2.RandAugment()
_OPS = list(_RA._AUGMENTATION_SPACE)
_SIGNED = torch.tensor([_RA._AUGMENTATION_SPACE[op][1] for op in _OPS])
_GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
_BLENDS = ("Brightness", "Color", "Contrast")
_GROUPED = ("Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")  # torchvision calls per group
assert set(_OPS) == {"Identity", *_GEOMETRIC, *_BLENDS, *_GROUPED}, "torchvision's RandAugment ops changed"


def _uniform(n, low, high, generator, device, *shape) -> Tensor:
    """n (x shape) float32 samples uniform in [low, high) from `generator`."""
    return low + (high - low) * torch.rand(n, *shape, generator=generator, device=device)


def random_crop(x: Tensor, padding: int, generator, *, return_params: bool = False):
    """Reflect-pad each image by `padding` and crop its own random H x W window (params: top, left)."""
    n, c, h, w = x.shape
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=x.device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=x.device)
    if padding == 0:
        return (x, (top, left)) if return_params else x
    padded = F.pad(x, [padding] * 4, padding_mode="reflect")
    rows = top[:, None, None] + torch.arange(h, device=x.device)[:, None]  # N, H, 1
    cols = left[:, None, None] + torch.arange(w, device=x.device)  # N, 1, W
    index = (rows * padded.shape[-1] + cols).view(n, 1, h * w).expand(n, c, h * w)
    out = padded.flatten(2).gather(2, index).view(n, c, h, w)  # one gather of all the crop windows
    return (out, (top, left)) if return_params else out


def random_flip(x: Tensor, generator, p: float = 0.5, *, return_params: bool = False):
    """Flip each image horizontally with probability p (params: the flip mask)."""
    mask = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    out = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return (out, mask) if return_params else out


def op_magnitude(op: str, magnitude: int, negative: bool, height: int, width: int,
                 num_magnitude_bins: int = 31) -> float:
    """The signed magnitude v2.RandAugment passes to `op` (0.0 for ops without magnitude)."""
    fn, signed = _RA._AUGMENTATION_SPACE[op]
    values = fn(num_magnitude_bins, height, width)
    value = 0.0 if values is None else float(values[magnitude])
    return -value if signed and negative else value


def apply_op(x: Tensor, op: str, value: float) -> Tensor:
    """torchvision's RandAugment op `op` with magnitude `value` on an image or a batch."""
    return _RA._apply_image_or_video_transform(x, op, value, interpolation=_RA.interpolation, fill=_RA._fill)


def _inverse_matrix(op: str, value: float, height: int, width: int) -> list[float]:
    """The inverse affine matrix with which torchvision's RandAugment resamples for `op` (identity for the others):
    F.affine's for the shears (centre at the corner) and translations, F.rotate's for Rotate."""
    matrix = _geometry._get_inverse_affine_matrix
    if op in ("ShearX", "ShearY"):
        shear = math.degrees(math.atan(value))
        return matrix([-width * 0.5, -height * 0.5], 0.0, [0.0, 0.0], 1.0,
                      [shear, 0.0] if op == "ShearX" else [0.0, shear])
    if op in ("TranslateX", "TranslateY"):
        shift = float(int(value))
        return matrix([0.0, 0.0], 0.0, [shift, 0.0] if op == "TranslateX" else [0.0, shift], 1.0, [0.0, 0.0])
    if op == "Rotate":
        return matrix([0.0, 0.0], -(value % 360), [0.0, 0.0], 1.0, [0.0, 0.0])
    return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def _grids(values: list[float], height: int, width: int, device) -> Tensor:
    """torchvision's sampling grid of every (op, sign) code: (2 x ops, H, W, 2)."""
    grids = []
    for c, value in enumerate(values):
        theta = torch.tensor(_inverse_matrix(_OPS[c // 2], value, height, width), device=device).reshape(1, 2, 3)
        grids.append(_geometry._affine_grid(theta, w=width, h=height, ow=width, oh=height))
    return torch.cat(grids)


def _degenerate(xf: Tensor, kind: Tensor) -> Tensor:
    """Per image, what its colour op blends with (torchvision's degenerate images): 0 for Brightness, the floored
    grayscale for Color, the mean grayscale for Contrast; float32 (N, C or 1, H, W). xf: the uint8 images as
    float32; `kind`: the index in _BLENDS per image (-1: none)."""
    gray = xf[:, 0:1].mul(0.2989).add_(xf[:, 1:2], alpha=0.587).add_(xf[:, 2:3], alpha=0.114).floor_() \
        if xf.shape[1] == 3 else xf
    k = kind[:, None, None, None]
    return torch.where(k == 2, gray.mean(dim=(1, 2, 3), keepdim=True), torch.where(k == 1, gray, 0.0))


@functools.lru_cache(maxsize=32)
def _tables(channels: int, height: int, width: int, magnitude: int, num_magnitude_bins: int, device: torch.device):
    """What a RandAugment round looks up per (op, sign) code, made once per image shape, magnitude and device (no
    copy to the device per batch): the signed magnitude, torchvision's sampling grid, the colour blend's kind (-1:
    none) and factor (1.0, i.e. unchanged, for the other ops and for Color on one channel) and 1 - factor (in double
    first, as torchvision's alpha), whether the op is one of _GROUPED, and whether each op takes a sign."""
    codes = [(_OPS[i // 2], i % 2 == 1) for i in range(2 * len(_OPS))]
    values = [op_magnitude(op, magnitude, negative, height, width, num_magnitude_bins) for op, negative in codes]
    kinds = [_BLENDS.index(op) if op in _BLENDS else -1 for op, _ in codes]
    ratios = [1.0 + v if kind >= 0 and not (channels == 1 and op == "Color") else 1.0
              for (op, _), kind, v in zip(codes, kinds, values)]
    return (values, _grids(values, height, width, device), torch.tensor(kinds, device=device),
            torch.tensor(ratios, device=device), torch.tensor([1.0 - r for r in ratios], device=device),
            torch.tensor([op in _GROUPED for op, _ in codes], device=device), _SIGNED.to(device))


def rand_augment(x: Tensor, num_ops: int, magnitude: int, generator, num_magnitude_bins: int = 31, *,
                 return_params: bool = False):
    """RandAugment with `num_ops` ops and a sign drawn per image (params: [(op index, negative)] per round)."""
    n, c, h, w = x.shape
    k, params = len(_OPS), []
    values, grids, kind, factor, complement, grouped, signed = _tables(c, h, w, magnitude, num_magnitude_bins,
                                                                       x.device)
    for _ in range(num_ops):
        ops = torch.randint(0, k, (n,), generator=generator, device=x.device)
        negative = (torch.rand(n, generator=generator, device=x.device) <= 0.5) & signed[ops]
        params.append((ops, negative))
        code = ops * 2 + negative.long()
        # geometric ops: one grid_sample, every image with its op's grid (the identity grid keeps the others exact)
        xf = torch.nn.functional.grid_sample(x.float(), grids[code], mode="nearest", padding_mode="zeros",
                                             align_corners=False).round_()  # whole numbers, as uint8 would hold
        # colour ops in torchvision's arithmetic (_blend): image x factor + degenerate x (1 - factor), the sum rounded
        # once as its add_(alpha=) does (exact in double, then float)
        r, q = factor[code][:, None, None, None], complement[code][:, None, None, None]
        blend = (xf * r).double() + _degenerate(xf, kind[code]).double() * q.double()
        x = blend.float().clamp_(0, 255).to(x.dtype)
        x = _grouped_ops(x, torch.where(grouped[code], code, 0), values, masked=x.device.type == "cuda")
    return (x, params) if return_params else x


def _grouped_ops(x: Tensor, code: Tensor, values: list[float], masked: bool) -> Tensor:
    """The _GROUPED ops (per-image ops: each image's result depends on that image alone), each image with the op of
    its (op, sign) code (0: unchanged). Grouped: one torchvision call per code on its images, which needs the codes'
    counts on the host (a sync, free on a CPU). Masked (on CUDA): every code's op on the whole batch, each image
    taking its own op's result: more arithmetic, no host sync, so the batch can be made ahead on a side stream. The
    same pixels either way."""
    codes = [i for i in range(len(values)) if _OPS[i // 2] in _GROUPED and (i % 2 == 0 or _SIGNED[i // 2])]
    if masked:
        for i in codes:
            x = torch.where((code == i)[:, None, None, None], apply_op(x, _OPS[i // 2], values[i]), x)
        return x
    order = torch.sort(code, stable=True).indices
    counts = torch.bincount(code, minlength=len(values)).tolist()
    groups = x.index_select(0, order).split(counts)
    out = torch.cat([g if i == 0 else apply_op(g, _OPS[i // 2], values[i]) for i, g in enumerate(groups)
                     if counts[i]])
    return out.index_select(0, torch.argsort(order))  # back to the batch order


def random_erasing(x: Tensor, p: float, generator, scale=(0.02, 0.33), ratio=(0.3, 3.3), value: float = 0.0, *,
                   return_params: bool = False):
    """Erase one random rectangle per image with probability p (params: top, left, height, width; 0 = none)."""
    n, _, h, w = x.shape
    dev = x.device
    area = h * w * _uniform(n, scale[0], scale[1], generator, dev, 10)
    aspect = torch.exp(_uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator, dev, 10))
    eh, ew = torch.sqrt(area * aspect).round().long(), torch.sqrt(area / aspect).round().long()
    fits = (eh < h) & (ew < w)
    first = fits.int().argmax(1, keepdim=True)  # first fitting attempt (0 when none fits; masked below)
    keep = fits.any(1) & (torch.rand(n, generator=generator, device=dev) < p)
    eh = torch.where(keep, eh.gather(1, first)[:, 0], 0)
    ew = torch.where(keep, ew.gather(1, first)[:, 0], 0)
    top = (torch.rand(n, generator=generator, device=dev) * (h - eh + 1)).long().clamp_max(h - eh)
    left = (torch.rand(n, generator=generator, device=dev) * (w - ew + 1)).long().clamp_max(w - ew)
    rows, cols = torch.arange(h, device=dev), torch.arange(w, device=dev)
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
    out = x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], value)
    return (out, (top, left, eh, ew)) if return_params else out


class Normalize:
    """uint8 image or batch -> float32 in [0, 1] -> (x - mean) / std per channel: v2.ToDtype(scale=True) and
    v2.Normalize's arithmetic, with mean and std made once per device (v2.Normalize copies them to the device and
    checks std on the host every call: a host sync per batch on CUDA)."""

    def __init__(self, mean, std):
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self._on: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def __call__(self, x: Tensor) -> Tensor:
        if x.device not in self._on:
            self._on[x.device] = tuple(torch.tensor(v, device=x.device).view(-1, 1, 1) for v in (self.mean, self.std))
        mean, std = self._on[x.device]
        return F.to_dtype(x, torch.float32, scale=True).sub_(mean).div_(std)


class BatchAugment:
    """uint8 batch -> normalized float batch, every image with its own random draws."""

    def __init__(self, *, crop_padding: int = 0, flip: bool = True, randaugment: tuple[int, int] | None = None,
                 erasing: float = 0.0, mean, std):
        self.crop_padding, self.flip, self.randaugment, self.erasing = crop_padding, flip, randaugment, erasing
        self.normalize = Normalize(mean, std)

    def __call__(self, x: Tensor, generator) -> Tensor:
        """Crop, flip, RandAugment, to float [0, 1], normalize, erase: each step only when configured."""
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        if self.randaugment:
            x = rand_augment(x, *self.randaugment, generator)
        x = self.normalize(x)
        if self.erasing > 0:
            x = random_erasing(x, self.erasing, generator)
        return x
