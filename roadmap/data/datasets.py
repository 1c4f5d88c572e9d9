"""Datasets and their augmentation.

Small datasets (Fashion-MNIST, CIFAR, synthetic) live as uint8 tensors on the training device and are augmented
there, a batch at a time. Folder datasets (ImageNet, Imagenette, ...) are decoded by DataLoader workers. Both use
torchvision.transforms.v2; MixUp/CutMix act on the batch in both cases.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock
from torchvision import datasets
from torchvision.transforms import v2

from roadmap.data.augment import BatchAugment, Normalize
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


class ImageFiles(torch.utils.data.Dataset):
    """The images of a class-folder tree as (image, label, path, problem): decoded with TorchCodec (PIL for
    formats it does not read) and transformed, or, with raw=True, the file's bytes for decoding on the device. An
    unreadable file gives (None, label, path, why) instead of an exception in a worker."""

    def __init__(self, root: Path, transform=None, raw: bool = False):
        try:
            folder = datasets.ImageFolder(str(root), loader=str)  # lists the files; decodes nothing
        except (FileNotFoundError, NotADirectoryError) as e:  # no class folder, or a class folder with no image
            raise ConfigError(f"data.root: {root}: {str(e).splitlines()[0]}") from None
        self.samples, self.classes, self.transform, self.raw = folder.samples, folder.classes, transform, raw

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        try:
            data = read_file(path)
            return (data if self.raw else self.transform(decode(data, path))), label, path, ""
        except (RuntimeError, OSError, ValueError) as e:
            return None, label, path, _why(e)


def read_file(path: str) -> torch.Tensor:
    """A file's bytes as a uint8 tensor (what DataLoader workers hand over for decoding on the device)."""
    data = Path(path).read_bytes()
    if not data:
        raise ValueError("Expected a non empty file")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _why(error: Exception) -> str:
    """The last line of a decoder's message, without the C++ function and source location TorchCodec puts first
    and without its closing full stop."""
    text = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return text.rsplit(".cpp:", 1)[-1].split(", ", 1)[-1].strip().removesuffix(".")[:160]


def decode(data: torch.Tensor, path: str | None = None) -> torch.Tensor:
    """uint8 (3, H, W) from a file's bytes: TorchCodec, or PIL for what it does not read (BMP, TIFF, ...; from
    `path`, or the bytes where there is none). As TorchCodec does, an EXIF orientation is applied (PIL's too), and
    16-bit images become 8-bit."""
    from torchcodec.decoders import decode_image  # here, not at the top: see corruptions._jpeg

    try:
        return decode_image(data, mode="RGB")
    except ValueError as e:  # TorchCodec recognizes the format by its first bytes and names the formats it reads
        if "nsupported" not in str(e):
            raise
        from PIL import Image, ImageOps

        with Image.open(path if path is not None else io.BytesIO(data.numpy().tobytes())) as image:
            return v2.functional.pil_to_tensor(ImageOps.exif_transpose(image).convert("RGB"))


def decode_batch(raw: list[torch.Tensor], device, paths: list[str] | None = None
                 ) -> tuple[list[torch.Tensor | None], list[str]]:
    """JPEG bytes decoded together on `device` (one batched nvJPEG call on CUDA; libjpeg-turbo on the CPU, the same
    pixels as `decode`); other formats as `decode` does, on the CPU (from `paths` where PIL reads them). Returns the
    images (None where unreadable) and why each unreadable one is."""
    from torchcodec.decoders import decode_jpeg  # here, not at the top: see corruptions._jpeg

    jpeg = [i for i, d in enumerate(raw) if len(d) > 2 and int(d[0]) == 0xFF and int(d[1]) == 0xD8]
    images: list[torch.Tensor | None] = [None] * len(raw)
    problems = [""] * len(raw)
    try:
        if jpeg:
            for i, image in zip(jpeg, decode_jpeg([raw[i] for i in jpeg], mode="RGB", device=device)):
                images[i] = image
    except RuntimeError:  # one bad file fails the batch: find it one by one
        for i in jpeg:
            try:
                images[i] = decode_jpeg(raw[i], mode="RGB", device=device)
            except RuntimeError as e:
                problems[i] = _why(e)
    for i in sorted(set(range(len(raw))) - set(jpeg)):
        try:
            images[i] = decode(raw[i], paths[i] if paths is not None else None).to(device)
        except (RuntimeError, OSError, ValueError) as e:
            problems[i] = _why(e)
    return images, problems


def _collate(batch):
    """(images, labels, their paths, problems): the readable images stacked (a list of byte tensors when raw), and
    "<path> (<why>)" for every unreadable one."""
    good = [b for b in batch if b[0] is not None]
    images = [b[0] for b in good]
    if good and images[0].dim() == 3:
        images = torch.stack(images)
    return (images, torch.tensor([b[1] for b in good], dtype=torch.long), [b[2] for b in good],
            [f"{b[2]} ({b[3]})" for b in batch if b[0] is None])


class DeviceStage:
    """data.decode=gpu: decode the batch's JPEGs on the device, crop and resize every image there (random resized
    crops for training, resize + center crop for evaluation), then the batch augmentation."""

    def __init__(self, data_cfg, recipe, device, train: bool):
        self.device, self.train, self.size = device, train, data_cfg.resolution
        self.resize = int(data_cfg.resolution / data_cfg.eval_crop)
        self.augment = batch_augment(data_cfg, recipe) if train else None
        self.norm = normalize(data_cfg)

    def __call__(self, raw, labels, paths, generator):
        images, problems = decode_batch(raw, self.device, paths)
        keep = [i for i, image in enumerate(images) if image is not None]
        bicubic = v2.InterpolationMode.BICUBIC
        if self.train:
            from torchvision.transforms import RandomResizedCrop

            crops = [v2.functional.resized_crop(images[i], *RandomResizedCrop.get_params(
                images[i], (0.08, 1.0), (3 / 4, 4 / 3)), [self.size, self.size], bicubic, antialias=True)
                for i in keep]
        else:
            crops = [v2.functional.center_crop(v2.functional.resize(images[i], self.resize, bicubic, antialias=True),
                                               self.size) for i in keep]
        x = torch.stack(crops) if crops else torch.empty(0, 3, self.size, self.size, device=self.device)
        x = self.augment(x, generator) if self.train else self.norm(x)
        return x, labels[keep].to(self.device), [f"{path} ({p})" for path, p in zip(paths, problems) if p]


class FolderLoader:
    """A DataLoader over image files that leaves out unreadable images with a one-line warning naming each
    (data.bad_images=warn) or stops with a one-line error naming the first (data.bad_images=error)."""

    def __init__(self, loader, *, bad_images: str, stage: DeviceStage | None = None, seed: int = 0, rank: int = 0):
        self.loader, self.bad_images, self.stage, self.seed, self.rank = loader, bad_images, stage, seed, rank
        self.sampler, self.epoch, self.warned = getattr(loader, "sampler", None), 0, set()

    def __len__(self):
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _report(self, problems: list[str]) -> None:
        for problem in problems:
            if self.bad_images == "error":
                raise ConfigError(f"unreadable image {problem}; data.bad_images=warn leaves such files out")
            if problem not in self.warned:
                self.warned.add(problem)
                print(f"warning: leaving out unreadable image {problem}", file=sys.stderr, flush=True)

    def __iter__(self):
        draws = None
        if self.stage is not None and self.stage.train:
            draws = torch.Generator(self.stage.device).manual_seed(
                derive(self.seed, "augment", rank=self.rank, epoch=self.epoch))
        for images, labels, paths, problems in self.loader:
            if self.stage is not None and len(labels):
                images, labels, more = self.stage(images, labels, paths, draws)
                problems = problems + more
            self._report(problems)
            if len(labels):
                yield images, labels


def eval_view(data_cfg) -> v2.Transform:
    """What evaluation sees of a folder dataset's image: resized to resolution / eval_crop, center-cropped (uint8)."""
    r = data_cfg.resolution
    return v2.Compose([v2.Resize(int(r / data_cfg.eval_crop), antialias=True,
                                 interpolation=v2.InterpolationMode.BICUBIC), v2.CenterCrop(r)])


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


def same_classes(root: Path, train: list[str], val: list[str]) -> None:
    """A label is its class folder's place in the sorted names of its split: val/ must have train/'s class folders
    (the same names at the same labels), or a one-line error naming the difference."""
    if val == train:
        return
    def names(xs):
        return ", ".join(xs[:5]) + (f" and {len(xs) - 5} more" if len(xs) > 5 else "")

    lacks, extra = sorted(set(train) - set(val)), sorted(set(val) - set(train))
    difference = "; ".join([*([f"val/ lacks {names(lacks)}"] if lacks else []),
                            *([f"val/ has {names(extra)}, which train/ lacks"] if extra else [])])
    raise ConfigError(f"data.root={root}: val/ must have the class folders of train/ (labels are their places in "
                      f"its sorted names): {difference}")


def folder_loaders(data_cfg, recipe, batch_size, *, rank, world, seed, workers, device):
    """Loaders over root/train and root/val class folders, sharded with DistributedSampler: decoded and augmented by
    DataLoader workers (data.decode=cpu), or read by the workers and decoded and augmented on the training device
    (data.decode=gpu)."""
    from torch.utils.data import DataLoader, DistributedSampler, Subset

    root = Path(str(data_cfg.root))
    for part in ("train", "val"):
        if not (root / part).is_dir():
            raise ConfigError(f"data.root={root}: no {part}/ folder; an image-folder dataset needs "
                              f"{root}/train/<class>/*.jpg and {root}/val/<class>/*.jpg")
    decode_on, bad = getattr(data_cfg, "decode", "cpu"), getattr(data_cfg, "bad_images", "warn")
    raw = decode_on == "gpu"
    train_tf = v2.Compose([train_augment(data_cfg, recipe), normalize(data_cfg),
                           *([erase(recipe)] if recipe.erasing > 0 else [])])
    val_tf = v2.Compose([eval_view(data_cfg), normalize(data_cfg)])
    train_set = ImageFiles(root / "train", train_tf, raw)
    val_set = ImageFiles(root / "val", val_tf, raw)
    if len(train_set.classes) != data_cfg.num_classes:
        raise ConfigError(f"data.num_classes={data_cfg.num_classes} but {root}/train has "
                          f"{len(train_set.classes)} class folders")
    same_classes(root, train_set.classes, val_set.classes)
    common = dict(num_workers=workers, pin_memory=torch.device(device).type == "cuda" and not raw,
                  persistent_workers=workers > 0, collate_fn=_collate)
    train_sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=derive(seed, "order"),
                                       drop_last=True)
    train = DataLoader(train_set, batch_size, sampler=train_sampler, drop_last=True, **common)
    val = DataLoader(Subset(val_set, range(rank, len(val_set), world)), batch_size, **common)  # no padding
    stages = (DeviceStage(data_cfg, recipe, device, True), DeviceStage(data_cfg, recipe, device, False)) if raw \
        else (None, None)
    return (FolderLoader(train, bad_images=bad, stage=stages[0], seed=seed, rank=rank),
            FolderLoader(val, bad_images=bad, stage=stages[1], seed=seed, rank=rank))
