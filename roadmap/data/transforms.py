"""A recipe's augmentation as transforms: per image in DataLoader workers (folder datasets), per batch on the device
(tensor datasets: roadmap.data.augment's BatchAugment), the normalisation, and what evaluation sees of an image.
MixUp/CutMix act on the batch in both cases."""

from __future__ import annotations

from torchvision.transforms import v2

from roadmap.data.augment import BatchAugment, Normalize


def train_augment(data_cfg, recipe) -> v2.Transform:
    """Per-image augmentation of one decoded image in a DataLoader worker (folder datasets)."""
    ops = [v2.RandomResizedCrop(data_cfg.resolution, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
           v2.RandomHorizontalFlip()]
    if recipe.randaugment:
        ops.append(v2.RandAugment(num_ops=recipe.randaugment.num_ops, magnitude=recipe.randaugment.magnitude))
    return v2.Compose(ops)


def batch_augment(data_cfg, recipe) -> BatchAugment:
    """The same recipe for a whole batch on the device (tensor datasets): random crops of the padded image instead
    of resized crops, every image with its own draws."""
    ra = recipe.randaugment
    return BatchAugment(crop_padding=getattr(data_cfg, "crop_padding", None) or 0, flip=True,
                        randaugment=(ra.num_ops, ra.magnitude) if ra else None, erasing=recipe.erasing,
                        mean=data_cfg.mean, std=data_cfg.std)


def normalize(data_cfg) -> Normalize:
    """uint8 image or batch -> the normalized float32 the network takes (constants made once per device)."""
    return Normalize(data_cfg.mean, data_cfg.std)


def erase(recipe) -> v2.Transform | None:
    return v2.RandomErasing(p=recipe.erasing, value=0) if recipe.erasing > 0 else None


def batch_mix(recipe, num_classes: int) -> v2.Transform | None:
    """MixUp and/or CutMix on a whole batch (one of them per batch when both are on), soft targets out."""
    mixes = []
    if recipe.mixup > 0:
        mixes.append(v2.MixUp(alpha=recipe.mixup, num_classes=num_classes))
    if recipe.cutmix > 0:
        mixes.append(v2.CutMix(alpha=recipe.cutmix, num_classes=num_classes))
    return v2.RandomChoice(mixes) if mixes else None


def eval_view(data_cfg) -> v2.Transform:
    """What evaluation sees of a folder dataset's image: resized to resolution / eval_crop, center-cropped (uint8)."""
    r = data_cfg.resolution
    return v2.Compose([v2.Resize(int(r / data_cfg.eval_crop), antialias=True,
                                 interpolation=v2.InterpolationMode.BICUBIC), v2.CenterCrop(r)])
