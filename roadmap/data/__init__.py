"""The data, one surface for the trainer, the benchmarks and the GPU check: tensor datasets held on the device
(datasets), class-folder datasets decoded by workers or on the device (folders), the recipe's transforms
(transforms), the batched per-image augmentation (augment), corrupted validation sets (corruptions)."""

from roadmap.data.datasets import (DEBIAN_FASHION_MNIST, FASHION_FILES, Prefetched, TensorLoader, TensorSplit,
                                   eval_subset, load_tensor_dataset)
from roadmap.data.folders import (DeviceStage, FolderLoader, ImageFiles, collate, decode, decode_batch,
                                  folder_loaders, read_file)
from roadmap.data.transforms import batch_augment, batch_mix, erase, eval_view, normalize, train_augment

__all__ = ["DEBIAN_FASHION_MNIST", "FASHION_FILES", "DeviceStage", "FolderLoader", "ImageFiles", "Prefetched",
           "TensorLoader", "TensorSplit", "batch_augment", "batch_mix", "collate", "decode", "decode_batch", "erase",
           "eval_subset", "eval_view", "folder_loaders", "load_tensor_dataset", "normalize", "read_file",
           "train_augment"]
