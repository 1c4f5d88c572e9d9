"""The data loaders' throughput (python -m roadmap.bench --loader), each against what it has to feed:

- device loader: the tensor loader with the paper's augmentation (random crops, flips, RandAugment 2/9, random
  erasing 0.25, then MixUp/CutMix) on the training device, over a CIFAR-sized uint8 dataset at 32px, against the
  training img/s of ConvNeXt-T at the cifar scale on the same device (target: at least 10x);
- folder loader: one DataLoader worker's img/s decoding JPEGs (ImageNet-sized, 500x375) with RandomResizedCrop to
  224px, flips, RandAugment and erasing, times 16 workers, against ConvNeXt-T's training img/s on an H100-class GPU
  at 224px in bf16 (about 3000 img/s) and, on a GPU, the img/s measured here;
- folder loader with data.decode=gpu: reading in one worker, decoding (nvJPEG on CUDA), cropping and augmenting on
  the training device.
"""

from __future__ import annotations

import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torchvision

from roadmap.bench.throughput import measure
from roadmap.bench.timing import device_name, device_of, sync, timer
from roadmap.config import compose, model_config
from roadmap import data as data_lib
from roadmap.nets.model import RoadmapNet
from roadmap.tables import markdown

H100_CONVNEXT_T_224 = 3000.0  # img/s, ConvNeXt-T training at 224px in bf16 on an H100-class GPU (issue target)
WORKERS = 16


def jpeg_tree(root: Path, n: int, size=(375, 500)) -> Path:
    """n JPEGs of ImageNet's typical size in root/train/<class>/ (smooth content plus noise, quality 90)."""
    # here, not at the top: the command line imports this module, and a node whose TorchCodec does not load with its
    # torch still runs every other benchmark (roadmap.data.corruptions imports it where it encodes, for the same reason)
    from torchcodec.encoders import JpegEncoder

    g = torch.Generator().manual_seed(0)
    for i in range(n):
        folder = root / "train" / f"c{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        yy, xx = torch.meshgrid(torch.linspace(0, 1, size[0]), torch.linspace(0, 1, size[1]), indexing="ij")
        image = torch.stack([yy, xx, (yy + xx) / 2]) * 180 + torch.rand(3, *size, generator=g) * 75
        JpegEncoder(image.to(torch.uint8)).to_file(folder / f"{i}.jpg", quality=90)
    (root / "val").mkdir(exist_ok=True)
    return root


def device_loader(device, batch: int, batches: int) -> float:
    """img/s of the tensor loader with the cifar scale's augmentation, MixUp/CutMix included."""
    cfg = compose(["+step=separate_downsampling", "scale=cifar", "data=synthetic", "data.resolution=32",
                   "data.num_classes=100", f"data.train_size={batch * (batches + 2)}"])
    split, _ = data_lib.load_tensor_dataset(cfg.data, device)
    loader = data_lib.TensorLoader(split, batch, train=True, seed=0, augment=data_lib.batch_augment(cfg.data, cfg.recipe),
                                   norm=data_lib.normalize(cfg.data))
    mix = data_lib.batch_mix(cfg.recipe, cfg.data.num_classes)
    it = iter(loader)
    # Timer.timeit: 2 warm-up batches, then `batches` batches timed back to back (the loader holds batches + 2)
    return batch / timer(lambda: mix(*next(it)), device).timeit(batches).median


def convnext_img_s(device, scale: str, batch: int, iters: int) -> float:
    """Training img/s of ConvNeXt-T at a scale's resolution and width (bf16 + channels_last on GPU)."""
    cfg = compose(["+step=separate_downsampling", f"scale={scale}"])
    gpu = device.type == "cuda"
    return measure(RoadmapNet(model_config(cfg)), batch=batch, resolution=cfg.data.resolution,
                   num_classes=cfg.data.num_classes, device=device, precision="bf16" if gpu else "fp32",
                   channels_last=gpu, compile_model=False, warmup=2, iters=iters)["train_img_s"]


def folder_rates(root: Path, device, n: int) -> dict:
    """One worker's img/s decoding and augmenting at 224px; and reading + device decoding and augmenting."""
    cfg = compose(["+step=separate_downsampling", "scale=imagenet", f"data.root={root}", "data.num_classes=4"])
    train_tf = torchvision.transforms.v2.Compose([data_lib.train_augment(cfg.data, cfg.recipe),
                                                  data_lib.normalize(cfg.data), data_lib.erase(cfg.recipe)])
    files = data_lib.ImageFiles(root / "train", train_tf)
    # our own loops here, not Timer: each call reads other files (one pass over them), where Timer repeats one
    # statement and its warm-up would read ahead of the timed pass
    t = time.perf_counter()
    for i in range(n):
        files[i]
    per_worker = n / (time.perf_counter() - t)

    raw = data_lib.ImageFiles(root / "train", raw=True)
    stage = data_lib.DeviceStage(cfg.data, cfg.recipe, device, train=True)
    generator = torch.Generator(device).manual_seed(0)
    batch = min(n, 64)
    items = [raw[i] for i in range(batch)]
    bytes_, labels, paths, _ = data_lib.collate(items)
    stage(bytes_, labels, paths, generator)  # warm-up (nvJPEG handles, kernels)
    sync(device)
    times = []
    for start in range(0, n - batch + 1, batch):
        t = time.perf_counter()
        bytes_, labels, paths, _ = data_lib.collate([raw[i] for i in range(start, start + batch)])
        stage(bytes_, labels, paths, generator)
        sync(device)
        times.append(time.perf_counter() - t)
    return {"per_worker": per_worker, "device_decode": batch / statistics.median(times)}


def loaders(device=None, quick: bool = False) -> dict:
    device = device_of(device)
    gpu = device.type == "cuda"
    batch = 512 if gpu else 128
    rows = []
    loader_img_s = device_loader(device, batch, 4 if quick else 40)
    train_img_s = convnext_img_s(device, "cifar", batch if gpu else 32, 2 if quick else 10)
    rows.append({"loader": "device (tensor) loader, 32px, paper's augmentation + MixUp/CutMix", "img_s": loader_img_s,
                 "feeds": f"ConvNeXt-T training at the cifar scale on this device: {train_img_s:.0f} img/s",
                 "ratio": loader_img_s / train_img_s, "target": 10.0})
    with tempfile.TemporaryDirectory() as tmp:
        n = 8 if quick else 192
        rates = folder_rates(jpeg_tree(Path(tmp), n), device, n)
    convnext_224 = convnext_img_s(device, "imagenet", 128, 10) if gpu and not quick else None
    needed = max(H100_CONVNEXT_T_224, convnext_224 or 0.0)
    rows.append({"loader": f"folder loader, 1 worker x {WORKERS}, JPEG 500x375 -> 224px RandomResizedCrop + "
                           "flip + RandAugment + erasing", "img_s": rates["per_worker"] * WORKERS,
                 "per_worker": rates["per_worker"],
                 "feeds": f"ConvNeXt-T training at 224px in bf16: {H100_CONVNEXT_T_224:.0f} img/s on an H100-class GPU"
                          + (f", {convnext_224:.0f} img/s measured here" if convnext_224 else ""),
                 "ratio": rates["per_worker"] * WORKERS / needed, "target": 1.0})
    rows.append({"loader": "folder loader, data.decode=gpu: 1 worker reads, the device decodes, crops, augments "
                           f"({'nvJPEG' if gpu else 'CPU decode on this machine'})", "img_s": rates["device_decode"],
                 "feeds": f"the same: {needed:.0f} img/s", "ratio": rates["device_decode"] / needed, "target": 1.0})
    meta = {"device": device_name(device), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "torchcodec": _torchcodec_version(),
            "date": datetime.date.today().isoformat(), "batch": batch, "quick": quick}
    return {"meta": meta, "rows": rows}


def _torchcodec_version() -> str:
    import torchcodec  # here, not at the top: see jpeg_tree

    return torchcodec.__version__


def write_loaders(result: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    meta = result["meta"]
    stem = out / f"loader_{'cpu' if 'CPU' in meta['device'] else 'gpu'}"
    pd.DataFrame(result["rows"]).to_csv(stem.with_suffix(".csv"), index=False)
    cells = [[r["loader"], f"{r['img_s']:.0f}", r["feeds"], f"{r['ratio']:.2f}x", f">= {r['target']:.0f}x",
              "met" if r["ratio"] >= r["target"] else "not met"] for r in result["rows"]]
    lines = [f"# Loader benchmark on {meta['device']}", "",
             f"torch {meta['torch']}, torchvision {meta['torchvision']}, torchcodec {meta['torchcodec']}, "
             f"{meta['date']}; `python -m roadmap.bench --loader{' --quick' if meta['quick'] else ''}`; "
             f"device-loader batch {meta['batch']}.", "",
             *markdown(cells, ("loader", "img/s", "what it feeds", "ratio", "target", ""))]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return [stem.with_suffix(".csv"), stem.with_suffix(".md")]


if __name__ == "__main__":  # the loader benchmark is a mode of the benchmark's command line
    print("error: the loader benchmark runs as `python -m roadmap.bench --loader`", file=sys.stderr)
    raise SystemExit(2)
