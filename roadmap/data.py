"""Datasets and their augmentation.

Small datasets (Fashion-MNIST, CIFAR, synthetic) live as uint8 tensors on the training device and are augmented
there, a batch at a time. Folder datasets (ImageNet, Imagenette, ...) are decoded by DataLoader workers. Both use
torchvision.transforms.v2; MixUp/CutMix act on the batch in both cases.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision import datasets
from torchvision.transforms import v2

from .model import ConfigError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte")


@dataclass
class TensorSplit:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)


def _fashion_mnist(cfg) -> tuple[TensorSplit, TensorSplit]:
    root = Path(cfg.root or "data/fashion_mnist")
    raw = root / "FashionMNIST" / "raw"
    if not all((raw / f).exists() for f in FASHION_FILES) and all(
            (DEBIAN_FASHION_MNIST / f"{f}.gz").exists() for f in FASHION_FILES):
        raw.mkdir(parents=True, exist_ok=True)
        for f in FASHION_FILES:
            with gzip.open(DEBIAN_FASHION_MNIST / f"{f}.gz") as src, open(raw / f"{f}.tmp", "wb") as dst:
                shutil.copyfileobj(src, dst)
            (raw / f"{f}.tmp").replace(raw / f)
    try:
        splits = [datasets.FashionMNIST(str(root), train=t, download=bool(cfg.download)) for t in (True, False)]
    except Exception as e:
        raise ConfigError(f"Fashion-MNIST not found ({type(e).__name__}): put its files in data.root={root}, or "
                          f"install Debian's dataset-fashion-mnist ({DEBIAN_FASHION_MNIST}), or allow "
                          f"data.download=true with internet") from None
    return tuple(TensorSplit(d.data.unsqueeze(1), d.targets.long()) for d in splits)


def _cifar(cfg) -> tuple[TensorSplit, TensorSplit]:
    cls = datasets.CIFAR10 if cfg.name == "cifar10" else datasets.CIFAR100
    try:
        splits = [cls(str(cfg.root), train=t, download=bool(cfg.download)) for t in (True, False)]
    except Exception as e:
        raise ConfigError(f"{cfg.name} not found in data.root={cfg.root} and not downloadable "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    return tuple(TensorSplit(torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(d.targets))
                 for d in splits)


def _synthetic(cfg) -> tuple[TensorSplit, TensorSplit]:
    g = torch.Generator().manual_seed(1234)
    r = cfg.resolution

    def split(n):
        return TensorSplit(torch.randint(0, 256, (n, 3, r, r), generator=g, dtype=torch.uint8),
                           torch.randint(0, cfg.num_classes, (n,), generator=g))
    return split(cfg.train_size), split(cfg.val_size)


TENSOR_DATASETS = {"fashion_mnist": _fashion_mnist, "cifar10": _cifar, "cifar100": _cifar, "synthetic": _synthetic}


def load_tensor_dataset(cfg, device) -> tuple[TensorSplit, TensorSplit]:
    """Both splits as uint8 tensors at the configured resolution, on `device`."""
    if cfg.name not in TENSOR_DATASETS:
        raise ConfigError(f"data.name={cfg.name!r}: tensor datasets are {', '.join(TENSOR_DATASETS)}")
    out = []
    for split in TENSOR_DATASETS[cfg.name](cfg):
        images = split.images
        if images.shape[-1] != cfg.resolution or images.shape[-2] != cfg.resolution:
            images = v2.functional.resize(images, [cfg.resolution, cfg.resolution], antialias=True)
        out.append(TensorSplit(images.to(device), split.labels.to(device)))
    return tuple(out)


def train_augment(data_cfg, recipe) -> v2.Transform:
    """Per-image augmentation of uint8 images (applied by workers, or on the device to small groups of a batch)."""
    r = data_cfg.resolution
    if data_cfg.kind == "folder":
        ops = [v2.RandomResizedCrop(r, interpolation=v2.InterpolationMode.BICUBIC, antialias=True)]
    else:
        pad = data_cfg.crop_padding
        ops = [v2.RandomCrop(r, padding=pad, padding_mode="reflect")] if pad else []
    ops.append(v2.RandomHorizontalFlip())
    if recipe.randaugment:
        ops.append(v2.RandAugment(num_ops=recipe.randaugment.num_ops, magnitude=recipe.randaugment.magnitude))
    return v2.Compose(ops)


def normalize(data_cfg) -> v2.Transform:
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(data_cfg.mean), list(data_cfg.std))])


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


class TensorLoader:
    """Batches of a TensorSplit held on the device: a seeded permutation per epoch, sharded over processes, with
    the augmentation applied on the device to groups of `chunk` images (no per-image Python)."""

    def __init__(self, split: TensorSplit, batch_size: int, *, train: bool, seed: int, rank: int = 0,
                 world: int = 1, augment=None, norm=None, erasing=None, chunk: int = 16):
        self.split, self.batch_size, self.train, self.seed = split, batch_size, train, seed
        self.rank, self.world, self.augment, self.norm, self.erasing = rank, world, augment, norm, erasing
        self.chunk, self.epoch = chunk, 0

    def __len__(self):
        n = len(self.split.labels) // self.world
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def _groups(self, x, fn):
        return torch.cat([fn(part) for part in x.split(self.chunk)]) if fn is not None else x

    def __iter__(self):
        n = len(self.split.labels)
        device = self.split.labels.device
        if self.train:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=g).to(device)
        else:
            order = torch.arange(n, device=device)
        order = order[self.rank::self.world]
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x, y = self.split.images[idx], self.split.labels[idx]
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            if self.train:
                x = self._groups(x, self.augment)
            x = self.norm(x)
            if self.train:
                x = self._groups(x, self.erasing)
            yield x, y


def folder_loaders(data_cfg, recipe, batch_size, *, rank, world, seed, workers, pin_memory):
    """DataLoaders over root/train and root/val class folders, sharded with DistributedSampler."""
    from torch.utils.data import DataLoader, DistributedSampler, Subset

    root = Path(str(data_cfg.root))
    for part in ("train", "val"):
        if not (root / part).is_dir():
            raise ConfigError(f"data.root={root}: no {part}/ folder; an image-folder dataset needs "
                              f"{root}/train/<class>/*.jpg and {root}/val/<class>/*.jpg")
    r = data_cfg.resolution
    train_tf = v2.Compose([v2.ToImage(), train_augment(data_cfg, recipe), normalize(data_cfg),
                           *([erase(recipe)] if recipe.erasing > 0 else [])])
    val_tf = v2.Compose([v2.ToImage(), v2.Resize(int(r / data_cfg.eval_crop), antialias=True,
                                                  interpolation=v2.InterpolationMode.BICUBIC),
                         v2.CenterCrop(r), normalize(data_cfg)])
    train_set = datasets.ImageFolder(str(root / "train"), transform=train_tf)
    val_set = datasets.ImageFolder(str(root / "val"), transform=val_tf)
    if len(train_set.classes) != data_cfg.num_classes:
        raise ConfigError(f"data.num_classes={data_cfg.num_classes} but {root}/train has "
                          f"{len(train_set.classes)} class folders")
    common = dict(num_workers=workers, pin_memory=pin_memory, persistent_workers=workers > 0)
    train_sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=seed, drop_last=True)
    train = DataLoader(train_set, batch_size, sampler=train_sampler, drop_last=True, **common)
    val = DataLoader(Subset(val_set, range(rank, len(val_set), world)), batch_size, **common)  # no padding
    return train, val
