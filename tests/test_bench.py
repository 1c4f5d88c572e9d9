"""The benchmark on a tiny setting: a well-formed CSV and Markdown table, a row per step and the references."""

import subprocess
import sys

import pandas as pd
import pytest

from helpers import ROOT


def test_bench_tiny_setting_writes_csv_and_markdown(tmp_path):
    steps = ["resnet50", "widen", "separate_downsampling"]
    p = subprocess.run([sys.executable, "-m", "roadmap.bench", "--batch", "2", "--resolution", "64", "--iters", "1",
                        "--warmup", "1", "--cifar-batch", "2", "--rounds", "1", "--peak-tflops", "1", "--steps", *steps,
                        "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(tmp_path / "bench_cpu_convnext_t.csv")
    assert list(df["step"]) == steps + ["torchvision resnet50", "torchvision convnext_tiny"]
    assert (df["train_img_s"] > 0).all() and (df["infer_img_s"] > 0).all() and (df["peak_mem_mb"] > 0).all()
    rows = df.set_index("step")
    assert rows.loc["separate_downsampling", "params"] == rows.loc["torchvision convnext_tiny", "params"] == 28_589_128
    assert rows.loc["resnet50", "gmacs"] == rows.loc["torchvision resnet50", "gmacs"] == 4.089
    assert rows.loc["torchvision resnet50", "ratio_ours_to_torchvision"] > 0
    assert rows.loc["separate_downsampling", "ratio_ours_to_torchvision"] == \
        rows.loc["torchvision convnext_tiny", "ratio_ours_to_torchvision"]
    assert (df.loc[df["model"] == "roadmap", "cifar_img_s"] > 0).all()
    md = (tmp_path / "bench_cpu_convnext_t.md").read_text()
    assert md.startswith("# Benchmark: convnext_t on ") and "CPU" in md.splitlines()[0]
    assert f"torch {__import__('torch').__version__}" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(steps) + 2
    assert "Trainer end-to-end on the embedded scale (separate_downsampling, random data of that shape)" in md
    assert "cifar-scale sweep of the 3 measured steps (of 17) (3 steps, 100 epochs" in md
    # with a given peak (1 TFLOP/s) the utilisation is 6 x GMACs at 64px x img/s / peak
    r = rows.loc["separate_downsampling"]
    assert r["mfu"] == pytest.approx(6 * r["gmacs"] * (64 / 224) ** 2 * 1e9 * r["train_img_s"] / 1e12)
    assert "Model FLOP utilisation against a dense bf16 peak of 1 TFLOP/s: " in md


def test_activation_memory_counts_saved_tensors():
    import torch

    from roadmap.bench import activation_bytes
    lin = torch.nn.Sequential(torch.nn.Linear(100, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    x = torch.randn(8, 100)
    # the input and the ReLU output are saved (the ReLU output twice: by ReLU and by the second Linear, once counted)
    assert activation_bytes(lin, x) == 8 * 100 * 4 * 2


def test_gpu_check_stops_at_once_without_a_gpu(tmp_path):
    """`make gpu-check` (and the module behind it) on a machine without CUDA: one line, exit 2, nothing written."""
    for cmd in (["make", "-s", "gpu-check", f"GPU_OUT={tmp_path / 'out'}"],
                [sys.executable, "-m", "roadmap.gpu_check", "--out", str(tmp_path / "out")]):
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, p.stderr
        assert "gpu-check needs a CUDA GPU" in lines[0]
    assert not (tmp_path / "out").exists()
