"""The GPU path (`make gpu-check` runs these on a CUDA machine; they are skipped elsewhere): bf16 autocast and
channels_last training, torch.compile, the device data pipeline, JPEG decoding on the GPU, exact resume."""

import signal
import subprocess
import sys
import time

import pytest
import torch

from roadmap.data import augment
import roadmap.data as data_lib

from helpers import ROOT, TINY, metrics, run, summary

pytestmark = pytest.mark.gpu
RUN = "embedded/convnext_t/{step}/seed0"
GPU = ["train.device=cuda"]


def test_bf16_channels_last_training_on_cuda(tmp_path):
    run("+step=separate_downsampling", *TINY, *GPU, "train.epochs=2", runs_root=tmp_path)
    s = summary(tmp_path / RUN.format(step="separate_downsampling"))
    assert s["status"] == "done" and s["device"].startswith("cuda") and s["precision"] == "bf16"
    assert s["epochs"] == 2 and 0 <= s["final_top1"] <= 100


def test_compile_on_cuda(tmp_path):
    run("+step=inverted_bottleneck", *TINY, *GPU, "train.epochs=1", "train.compile=true", "model.depths=[1,1,1,1]",
        runs_root=tmp_path)
    s = summary(tmp_path / RUN.format(step="inverted_bottleneck"))
    assert s["status"] == "done" and s["device"].startswith("cuda")


def test_mixed_precision_is_fp16_with_loss_scaling_on_cuda(tmp_path):
    run("roadmap=bag_of_tricks", "+step=mixed_precision", *TINY, *GPU, "train.epochs=1", runs_root=tmp_path)
    s = summary(tmp_path / "embedded/bag_of_tricks/mixed_precision/seed0")
    assert s["status"] == "done" and s["precision"] == "fp16"


def test_batch_augmentation_on_cuda_matches_torchvision_per_image():
    g = torch.Generator("cuda").manual_seed(0)
    x = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, device="cuda")
    out, params = augment.rand_augment(x, 2, 9, g, return_params=True)
    assert out.device.type == "cuda" and len({int(o) for o in params[0][0]}) > 10
    off = 0
    for i in range(256):  # every image is what torchvision's op gives for its own draws
        y = x[i:i + 1]
        for ops, negative in params:
            op = augment._OPS[int(ops[i])]
            y = augment.apply_op(y, op, augment.op_magnitude(op, 9, bool(negative[i]), 32, 32))
        diff = (y[0].int() - out[i].int()).abs()
        assert diff.max() <= 1, (i, [augment._OPS[int(o[i])] for o, _ in params])
        off += int(diff.sum())
    # the colour blends are a + b x c rounded once (as an FMA); a CUDA build that rounds twice differs by one level
    # where a + b x c lands on an integer: rarely (exact on CPU, tests/test_augment.py)
    assert off <= out.numel() // 10_000
    g.manual_seed(0)
    assert torch.equal(augment.rand_augment(x, 2, 9, g), out)


def test_jpeg_decoding_on_the_gpu_is_close_to_the_cpu(tmp_path):
    from test_data import image_tree

    root = image_tree(tmp_path / "data", n=4, size=(120, 160))
    files = sorted((root / "train").rglob("*.jpg"))
    raw = [data_lib.read_file(str(f)) for f in files]
    images, problems = data_lib.decode_batch(raw, torch.device("cuda"))
    assert not any(problems) and all(i.device.type == "cuda" for i in images)
    for f, image in zip(files, images):
        cpu = data_lib.decode(data_lib.read_file(str(f)), str(f))
        assert image.shape == cpu.shape  # nvJPEG's IDCT may differ from libjpeg-turbo's by a level or two
        assert (image.cpu().int() - cpu.int()).abs().float().mean() < 2.0


def test_gpu_decoding_turns_by_exif_and_reads_every_format_and_bad_files_as_the_cpu():
    """TorchCodec's nvJPEG path applies a JPEG's EXIF orientation as its CPU path does; a batch with a PNG, a BMP
    (PIL) and a truncated JPEG decodes the rest on the device and leaves the bad one out with a reason."""
    from test_images import IMAGES

    names = ["rgb.jpg", "exif_rotated.jpg", "progressive.jpg", "gray.jpg", "rgb.png", "rgb.bmp", "truncated.jpg"]
    raw = [data_lib.read_file(str(IMAGES / n)) for n in names[:-1]]
    raw.append(raw[0][:300].clone())
    images, problems = data_lib.decode_batch(raw, torch.device("cuda"), [str(IMAGES / n) for n in names])
    assert problems[:6] == [""] * 6 and problems[6] and images[-1] is None  # nvJPEG words its reason itself
    for name, image in zip(names[:-1], images):
        cpu = data_lib.decode(data_lib.read_file(str(IMAGES / name)), str(IMAGES / name))
        assert image.device.type == "cuda" and image.shape == cpu.shape, name  # exif_rotated.jpg: (3, 52, 40)
        assert (image.cpu().int() - cpu.int()).abs().float().mean() < 2.0, name


def test_killed_cuda_run_resumes_to_the_same_result(tmp_path):
    args = ["+step=layer_norm", *TINY, *GPU, "train.epochs=4", "data.train_size=4096"]
    run(*args, runs_root=tmp_path / "straight")
    expected = metrics(tmp_path / "straight" / RUN.format(step="layer_norm"))
    run_dir = tmp_path / "killed" / RUN.format(step="layer_norm")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args, f"runs_root={tmp_path / 'killed'}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run_dir / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 1 <= len(metrics(run_dir)) < 4
    run(*args, runs_root=tmp_path / "killed")
    got = metrics(run_dir)
    assert [m["epoch"] for m in got] == [1, 2, 3, 4]
    for a, b in zip(got, expected):  # cuDNN picks its algorithms per process: equal up to float noise
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=2e-3)
        assert abs(a["val_top1"] - b["val_top1"]) <= 1.0 and a["lr"] == b["lr"]
