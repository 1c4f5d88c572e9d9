"""Data pipelines: per-image augmentation through the tensor loader, image folders with unreadable files, JPEG
decoding on the training device (run here on the CPU, where it must give the workers' pixels)."""

import torch
from PIL import Image

import roadmap.data as data_lib
from roadmap.config import compose
from roadmap.nets.model import ConfigError

from helpers import run_here, summary


def image_tree(root, n=4, classes=("cat", "dog"), size=(40, 52), fmt="jpg"):
    g = torch.Generator().manual_seed(0)
    for part in ("train", "val"):
        for c in classes:
            (root / part / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                # smooth gradients + noise: compresses like a photo, not like white noise
                yy, xx = torch.meshgrid(torch.linspace(0, 1, size[0]), torch.linspace(0, 1, size[1]), indexing="ij")
                base = torch.stack([yy, xx, (yy + xx) / 2]) * 200 + torch.rand(3, *size, generator=g) * 55
                Image.fromarray(base.to(torch.uint8).permute(1, 2, 0).numpy()).save(root / part / c / f"{i}.{fmt}")
    return root


def test_every_image_of_a_tensor_batch_gets_its_own_draws():
    cfg = compose(["+step=gelu", "data=synthetic", "recipe.randaugment={num_ops: 2, magnitude: 9}",
                   "recipe.erasing=0.5", "data.crop_padding=4"])
    one = torch.randint(0, 256, (1, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    split = data_lib.TensorSplit(one.expand(128, -1, -1, -1).clone(), torch.zeros(128, dtype=torch.long))
    loader = data_lib.TensorLoader(split, 64, train=True, seed=0, augment=data_lib.batch_augment(cfg.data, cfg.recipe),
                                   norm=data_lib.normalize(cfg.data))
    x = next(iter(loader))[0]
    distinct = {x[i].numpy().tobytes() for i in range(len(x))}
    assert len(distinct) > 60  # 64 copies of one image, (almost) all different after augmentation
    assert torch.equal(next(iter(loader))[0], x)  # same seed and epoch: the same batch
    loader.set_epoch(1)
    assert not torch.equal(next(iter(loader))[0], x)


def test_unreadable_images_are_left_out_with_a_warning_naming_them(tmp_path, capsys):
    root = image_tree(tmp_path / "data", fmt="png")
    good = (root / "train" / "cat" / "0.png").read_bytes()
    (root / "train" / "cat" / "truncated.png").write_bytes(good[: len(good) // 2])
    jpeg = tmp_path / "x.jpg"
    Image.open(root / "train" / "dog" / "0.png").convert("RGB").save(jpeg)
    (root / "train" / "dog" / "truncated.jpg").write_bytes(jpeg.read_bytes()[:300])
    (root / "train" / "dog" / "notes.jpg").write_bytes(b"not an image at all")
    args = ["+step=separate_downsampling", "scale=imagenette", f"data.root={root}", "data.num_classes=2",
            "data.resolution=32", "train.workers=0", "scale.batch_size=11", "scale.epochs=1",
            "model.width_multiplier=0.125"]
    code, _, err = run_here(*args, runs_root=tmp_path / "runs", capsys=capsys)  # an exception would fail here
    s = summary(tmp_path / "runs" / "imagenette/convnext_t/separate_downsampling/seed0")
    assert code == 0 and s["status"] == "done" and "Traceback" not in err
    warnings = [line for line in err.splitlines() if line.startswith("warning: leaving out unreadable image")]
    assert sorted(w.split()[5] for w in warnings) == sorted(
        str(root / "train" / c / f) for c, f in (("cat", "truncated.png"), ("dog", "truncated.jpg"),
                                                 ("dog", "notes.jpg")))
    code, _, err = run_here(*args, "data.bad_images=error", "train.overwrite=true", runs_root=tmp_path / "runs2",
                            capsys=capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("error: unreadable image ") and "truncated" in lines[0] or "notes.jpg" in lines[0]
    assert lines[0].endswith("; data.bad_images=warn leaves such files out")


def test_device_decoding_gives_the_workers_pixels(tmp_path, capsys):
    root = image_tree(tmp_path / "data", n=3)
    (root / "train" / "cat" / "bad.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    files = sorted((root / "train").rglob("*.jpg"))
    raw = [data_lib.read_file(str(f)) for f in files]
    images, problems = data_lib.decode_batch(raw, "cpu")
    for f, image, problem in zip(files, images, problems):
        if f.name == "bad.jpg":
            assert image is None and problem
        else:
            assert problem == "" and torch.equal(image, data_lib.decode(data_lib.read_file(str(f)), str(f)))
            assert image.shape == (3, 40, 52)

    cfg = compose(["+step=gelu", "scale=imagenette", f"data.root={root}", "data.num_classes=2", "data.resolution=32",
                   "data.decode=gpu", "recipe.erasing=0.25"])
    train, val = data_lib.folder_loaders(cfg.data, cfg.recipe, 7, rank=0, world=1, seed=0, workers=0, device="cpu")
    torch.manual_seed(5)  # the trainer reseeds every epoch: the random resized crops come from torch's RNG
    batches = list(train)
    x, y = batches[0]
    assert len(batches) == 1 and x.shape == (6, 3, 32, 32) and x.dtype == torch.float32  # 7 files, 1 unreadable
    assert sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]
    torch.manual_seed(5)
    assert torch.equal(next(iter(train))[0], x)  # same seeds, same crops and augmentation
    assert sum(len(y) for _, y in val) == 6 and next(iter(val))[0].shape[1:] == (3, 32, 32)
    code, _, err = run_here("+step=separate_downsampling", "scale=imagenette", f"data.root={root}",
                            "data.num_classes=2", "data.resolution=32", "data.decode=gpu", "train.workers=0",
                            "scale.batch_size=4", "scale.epochs=1", "model.width_multiplier=0.125",
                            runs_root=tmp_path / "runs", capsys=capsys)
    assert code == 0 and summary(tmp_path / "runs" / "imagenette/convnext_t/separate_downsampling/seed0")[
        "status"] == "done"
    assert "leaving out unreadable image" in err and "bad.jpg" in err


def test_bad_data_options_are_one_line_errors(tmp_path):
    root = image_tree(tmp_path / "data", n=1)
    from roadmap.config import validate

    for option, message in (("data.decode=tpu", "data.decode='tpu': must be one of cpu, gpu"),
                            ("data.bad_images=ignore", "data.bad_images='ignore': must be one of warn, error")):
        cfg = compose(["+step=gelu", "scale=imagenette", f"data.root={root}", "data.num_classes=2", option])
        try:
            validate(cfg)  # what the trainer checks first, before any loader is built
        except ConfigError as e:
            assert str(e).startswith(message)
        else:
            raise AssertionError(f"{option} was accepted")


FOLDER_RUN = ["+step=separate_downsampling", "scale=imagenette", "data.num_classes=2", "data.resolution=32",
              "train.workers=0", "scale.batch_size=4", "scale.epochs=1", "model.width_multiplier=0.125",
              "eval.robustness_images=4"]


def test_val_must_have_trains_classes_at_the_same_labels(tmp_path, capsys):
    """Issue 30: val/ with only class b of train's a, b gave its images label 0 (train's a) and top-1 100.00."""
    import shutil

    root = image_tree(tmp_path / "data", classes=("a", "b"))
    shutil.rmtree(root / "val" / "a")
    code, _, err = run_here(*FOLDER_RUN, f"data.root={root}", runs_root=tmp_path / "runs", capsys=capsys)
    assert code == 2 and err == (f"error: data.root={root}: val/ must have the class folders of train/ (labels are "
                                 f"their places in its sorted names): val/ lacks a\n")
    assert not (tmp_path / "runs").exists()
    image_tree(root, n=1, classes=("c",), fmt="png")
    shutil.rmtree(root / "train" / "c")
    code, _, err = run_here(*FOLDER_RUN, f"data.root={root}", runs_root=tmp_path / "runs", capsys=capsys)
    assert code == 2 and err.strip().endswith("val/ lacks a; val/ has c, which train/ lacks")
    assert not (tmp_path / "runs").exists()


def test_a_class_folder_without_images_is_one_line(tmp_path, capsys):
    root = image_tree(tmp_path / "data", classes=("a", "b"))
    (root / "train" / "c").mkdir()
    code, _, err = run_here(*FOLDER_RUN, "data.num_classes=3", f"data.root={root}", runs_root=tmp_path / "runs",
                            capsys=capsys)
    assert code == 2 and err.startswith(f"error: data.root: {root / 'train'}: Found no valid file for the classes c.")
    assert err.count("\n") == 1 and not (tmp_path / "runs").exists()
