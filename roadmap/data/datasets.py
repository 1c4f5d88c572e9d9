"""Tensor datasets: small datasets (Fashion-MNIST, CIFAR, synthetic) live as uint8 tensors on the training device
and are batched and augmented there (TensorLoader; Prefetched makes the next batch on a side CUDA stream). Folder
datasets are roadmap.data.folders; the recipe's transforms roadmap.data.transforms."""

from __future__ import annotations

import gzip
import os
import shutil
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock
from torchvision import datasets
from torchvision.transforms import v2

from roadmap.data.augment import BatchAugment
from roadmap.data.folders import ImageFiles
from roadmap.data.transforms import eval_view
from roadmap.errors import ConfigError
from roadmap.seeding import derive

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte")


@dataclass
class TensorSplit:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)


@contextmanager
def prepared_by_one(root: Path):
    """Several processes (torchrun ranks, parallel sweeps) preparing the same dataset folder: one extracts or
    downloads, the others wait for it and then find the files in place."""
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / ".prepare.lock"):
        yield


def _fashion_mnist(cfg) -> tuple[TensorSplit, TensorSplit]:
    root = Path(cfg.root or "data/fashion_mnist")
    raw = root / "FashionMNIST" / "raw"
    def missing():
        return not all((raw / f).exists() for f in FASHION_FILES)

    # gzipped files: Debian's package, or torchvision's layout (raw/*.gz, as the GPU kit carries them)
    gz = next((d for d in (raw, DEBIAN_FASHION_MNIST) if all((d / f"{f}.gz").exists() for f in FASHION_FILES)), None)
    try:
        with prepared_by_one(root) if missing() and (gz or cfg.download) else nullcontext():
            if missing() and gz:
                raw.mkdir(parents=True, exist_ok=True)
                for f in FASHION_FILES:
                    tmp = raw / f"{f}.{os.getpid()}.tmp"
                    with gzip.open(gz / f"{f}.gz") as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    tmp.replace(raw / f)
            splits = [datasets.FashionMNIST(str(root), train=t, download=bool(cfg.download)) for t in (True, False)]
    except Exception as e:
        raise ConfigError(f"Fashion-MNIST not found ({type(e).__name__}): put its four files (or their .gz) in {raw} "
                          f"(data.root={root}), or install Debian's dataset-fashion-mnist ({DEBIAN_FASHION_MNIST}), "
                          f"or allow data.download=true with internet") from None
    return tuple(TensorSplit(d.data.unsqueeze(1), d.targets.long()) for d in splits)


def _cifar(cfg) -> tuple[TensorSplit, TensorSplit]:
    cls = datasets.CIFAR10 if cfg.name == "cifar10" else datasets.CIFAR100
    try:
        with prepared_by_one(Path(cfg.root)) if cfg.download else nullcontext():
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
    for split, size in zip(TENSOR_DATASETS[cfg.name](cfg), (getattr(cfg, "train_size", None), getattr(cfg, "val_size", None))):
        if size is not None and cfg.name != "synthetic":  # the first `size` images (synthetic data makes as many)
            split = TensorSplit(split.images[:size], split.labels[:size])
        images = split.images
        if images.shape[-1] != cfg.resolution or images.shape[-2] != cfg.resolution:
            images = v2.functional.resize(images, [cfg.resolution, cfg.resolution], antialias=True)
        out.append(TensorSplit(images.to(device), split.labels.to(device)))
    return tuple(out)


class TensorLoader:
    """Batches of a TensorSplit held on the device: a seeded permutation per epoch, sharded over processes, and
    (training) a BatchAugment applied on the device, every image with its own draws from a generator seeded by
    (seed, rank, epoch), so a resumed run sees the same batches."""

    def __init__(self, split: TensorSplit, batch_size: int, *, train: bool, seed: int, rank: int = 0,
                 world: int = 1, augment: BatchAugment | None = None, norm=None):
        self.split, self.batch_size, self.train, self.seed = split, batch_size, train, seed
        self.rank, self.world, self.augment, self.norm = rank, world, augment, norm
        self.epoch = 0

    def __len__(self):
        n = len(self.split.labels) // self.world
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        n = len(self.split.labels)
        device = self.split.labels.device
        if self.train:
            shuffle = torch.Generator().manual_seed(derive(self.seed, "order", epoch=self.epoch))
            order = torch.randperm(n, generator=shuffle).to(device)
            draws = torch.Generator(device).manual_seed(derive(self.seed, "augment", rank=self.rank, epoch=self.epoch))
        else:
            order = torch.arange(n, device=device)
        order = order[self.rank::self.world]
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x, y = self.split.images[idx], self.split.labels[idx]
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            yield (self.augment(x, draws) if self.train and self.augment is not None else self.norm(x)), y


class Prefetched:
    """A loader of device batches whose batch k+1 is made (indexed, augmented) on a side CUDA stream while step k
    trains, so the augmentation is off the step's critical path. The same batches in the same order; off CUDA it
    is the loader itself. The side stream waits for the main one once an epoch (what the main stream did before,
    e.g. the last evaluation, comes first); after that it reads only the dataset and the generator, so it never
    waits for a step, and each step waits only for its own batch."""

    def __init__(self, loader, device):
        self.loader, self.device, self.side = loader, torch.device(device), None

    def __len__(self):
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self):
        batches = iter(self.loader)
        if self.device.type != "cuda":
            yield from batches
            return
        self.side = self.side or torch.cuda.Stream(self.device)
        side, main = self.side, torch.cuda.current_stream(self.device)
        side.wait_stream(main)

        def ahead():
            with torch.cuda.stream(side):
                return next(batches, None)

        batch = ahead()
        while batch is not None:
            main.wait_stream(side)
            for t in batch:
                t.record_stream(main)  # made on the side stream, used on the main one: keep it alive until then
            following = ahead()
            yield batch
            batch = following


def eval_subset(data_cfg, val: TensorSplit | None, count: int, device) -> TensorSplit:
    """`count` validation images spread evenly over the split (folder datasets list theirs class by class), as uint8
    on `device`: from `val` for tensor datasets, decoded from root/val for folder ones (unreadable files left out)."""
    total = len(val.labels) if val is not None else len(ImageFiles(Path(str(data_cfg.root)) / "val"))
    index = torch.linspace(0, total - 1, min(count, total)).round().long().unique()
    if val is not None:
        return TensorSplit(val.images[index.to(val.images.device)], val.labels[index.to(val.labels.device)])
    files = ImageFiles(Path(str(data_cfg.root)) / "val", eval_view(data_cfg))
    read = [files[i] for i in index.tolist()]
    good = [(image, label) for image, label, _, problem in read if not problem]
    if not good:
        raise ConfigError(f"data.root={data_cfg.root}: no readable image in val/ to evaluate robustness on")
    return TensorSplit(torch.stack([g[0] for g in good]).to(device), torch.tensor([g[1] for g in good]).to(device))


