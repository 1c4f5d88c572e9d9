"""Folder datasets (ImageNet, Imagenette, your own): class folders under root/train and root/val, read by DataLoader
workers and decoded with TorchCodec there (data.decode=cpu) or on the training device (data.decode=gpu), augmented
by the recipe's transforms; unreadable files are left out with a warning or refused (data.bad_images)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import torch
from torchvision import datasets
from torchvision.transforms import v2

from roadmap.data.transforms import batch_augment, erase, eval_view, normalize, train_augment
from roadmap.errors import ConfigError
from roadmap.seeding import derive


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


def collate(batch):
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
                  persistent_workers=workers > 0, collate_fn=collate)
    train_sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=derive(seed, "order"),
                                       drop_last=True)
    train = DataLoader(train_set, batch_size, sampler=train_sampler, drop_last=True, **common)
    val = DataLoader(Subset(val_set, range(rank, len(val_set), world)), batch_size, **common)  # no padding
    stages = (DeviceStage(data_cfg, recipe, device, True), DeviceStage(data_cfg, recipe, device, False)) if raw \
        else (None, None)
    return (FolderLoader(train, bad_images=bad, stage=stages[0], seed=seed, rank=rank),
            FolderLoader(val, bad_images=bad, stage=stages[1], seed=seed, rank=rank))
