"""Corrupted copies of a validation set, in the manner of ImageNet-C (Hendrycks & Dietterich, ICLR 2019): a fixed set
of corruptions, each at three severities, every random draw seeded by (seed, corruption, severity), so every run of
every step sees the same corrupted images and their accuracies pair.

The parameters are those of CIFAR-10-C (the 32px version of ImageNet-C) at its severities 1, 3 and 5, spatial ones
given per 32 px of image side and scaled to the resolution; pixelation takes ImageNet-C's (CIFAR-10-C's mildest
keeps 30 of 32 pixels, a resampling more than a pixelation, and its severities are not ordered at 32px).
torchvision.transforms.v2 makes the noise, blur and contrast, TorchCodec the JPEG (encoded at the quality and decoded
again, as v2.JPEG did with torchvision's deprecated codec: the same pixels); pixelation (a downsampling and back),
brightness (ImageNet-C adds to the HSV value, which torchvision's multiplicative brightness does not) and elastic
displacements (one smooth random field per image, drawn from the seeded generator, resampled as torchvision's
elastic does but for a whole batch at once) are written here.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from roadmap.errors import ConfigError
from roadmap.seeding import derive

SEVERITIES = (1, 2, 3)  # 0 is the clean image
# what each corruption's parameter is, and its value at severities 1, 2, 3
CORRUPTIONS = {
    "gaussian_noise": (0.04, 0.08, 0.10),  # std of additive noise on [0, 1]
    "gaussian_blur": (0.4, 0.7, 1.0),  # sigma, in pixels per 32 px of side
    "jpeg": (80, 58, 40),  # JPEG quality
    "contrast": (0.75, 0.4, 0.15),  # contrast factor (1: unchanged)
    "brightness": (0.05, 0.15, 0.3),  # added to the HSV value (brightest channel) on [0, 1]
    "pixelate": (0.6, 0.4, 0.25),  # side of the downsampled image, as a fraction of the side (ImageNet-C's)
    "elastic": (0.015, 0.03, 0.05),  # rms of a smooth random displacement, as a fraction of the side
}


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """`images` (uint8, N x C x H x W, C = 1 or 3) corrupted by `name` at `severity` (0: unchanged), as uint8 on the
    same device; the same images, name, severity and seed always give the same result."""
    if name not in CORRUPTIONS:
        raise ConfigError(f"corruption {name!r}: one of {', '.join(CORRUPTIONS)}")
    if severity not in (0, *SEVERITIES):
        raise ConfigError(f"severity {severity!r}: one of 0, {', '.join(map(str, SEVERITIES))}")
    if severity == 0:
        return images.clone()
    value = CORRUPTIONS[name][severity - 1]
    generator = torch.Generator().manual_seed(derive(seed, "corrupt", rank=list(CORRUPTIONS).index(name),
                                                     epoch=severity))
    x = images.cpu()
    if name == "jpeg":
        return _jpeg(x, value).to(images.device)
    out = OPS[name](F.to_dtype(x, torch.float32, scale=True), value, generator)
    return F.to_dtype(out.clamp(0, 1), torch.uint8, scale=True).to(images.device)


def _noise(x, sigma, generator):
    with torch.random.fork_rng(devices=[]):  # torchvision draws from the global generator: seed it, then restore it
        torch.manual_seed(int(torch.randint(2 ** 62, (), generator=generator)))
        return F.gaussian_noise(x, sigma=sigma, clip=True)


def jpeg_unavailable() -> str | None:
    """Why the JPEG corruption cannot run in this python (TorchCodec missing, or built for another torch than the
    one here: its library fails to load), in one line; None where it can."""
    try:
        _jpeg(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 50)
    except Exception as e:  # ImportError, OSError, RuntimeError: whatever loading TorchCodec's library raises
        return f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:200]
    return None


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Every image (uint8, C = 1 or 3) encoded as a JPEG at `quality` and decoded with its channels kept."""
    if len(x) == 0:
        return x.clone()
    # TorchCodec is imported where it is used: a GPU node whose TorchCodec does not load with its torch still imports
    # the package and trains (without this corruption: the GPU roadmap turns robustness off and says so)
    from torchcodec.decoders import decode_jpeg
    from torchcodec.encoders import JpegEncoder

    return torch.stack([decode_jpeg(JpegEncoder(image.contiguous()).to_tensor(quality=quality), mode="UNCHANGED")
                        for image in x])


def _blur(x, sigma, generator):
    sigma *= x.shape[-1] / 32
    size = 2 * math.ceil(3 * sigma) + 1
    return F.gaussian_blur(x, [size, size], [sigma, sigma])


def _contrast(x, factor, generator):
    return F.adjust_contrast(x, factor)


def _brightness(x, shift, generator):
    """The HSV value (the brightest channel) raised by `shift` with hue and saturation kept: every channel scaled by
    new value / value; a black pixel (no hue) turns gray."""
    value = x.amax(dim=1, keepdim=True)
    raised = (value + shift).clamp(max=1)
    return torch.where(value > 0, x * raised / value.clamp(min=1e-12), raised)


def _pixelate(x, fraction, generator):
    h, w = x.shape[-2:]
    small = F.resize(x, [max(1, int(h * fraction)), max(1, int(w * fraction))], antialias=True)
    return F.resize(small, [h, w], interpolation=v2.InterpolationMode.NEAREST)


def _elastic(x, rms, generator):
    """Each image moved along its own smooth random field (uniform noise blurred at 1/16 of the side), scaled to an
    rms displacement of `rms` sides, and resampled bilinearly as torchvision's elastic does (displacements in [-1, 1]
    grid units, 2 per side; outside the image is black): one batched grid_sample instead of one call per image."""
    n, _, h, w = x.shape
    sigma = max(h, w) / 16
    size = 2 * math.ceil(3 * sigma) + 1
    field = F.gaussian_blur(torch.rand(n * 2, 1, h, w, generator=generator) * 2 - 1, [size, size], [sigma, sigma])
    field = field.view(n, 2, h, w).permute(0, 2, 3, 1)
    field = field / field.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp(min=1e-12) * 2 * rms
    identity = torch.nn.functional.affine_grid(torch.eye(2, 3).expand(n, 2, 3), [n, 1, h, w], align_corners=False)
    return torch.nn.functional.grid_sample(x, identity + field, mode="bilinear", padding_mode="zeros",
                                           align_corners=False)


OPS = {"gaussian_noise": _noise, "gaussian_blur": _blur, "contrast": _contrast, "brightness": _brightness,
       "pixelate": _pixelate, "elastic": _elastic}

