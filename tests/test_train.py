"""The training engine: train/eval/resume, DDP on CPU, configs, datasets and every bad input."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import roadmap
import roadmap.data
from roadmap import record
from roadmap.data import datasets as data_lib
from roadmap.config import compose
from roadmap.nets.model import ConfigError
from roadmap.report.build import main as report_main
from roadmap.train.job import build_loaders
from roadmap.train.runtime import Runtime

from helpers import ROOT, TINY, free_port, metrics, multirun_here, run, run_here, summary, table_rows

RUN = "embedded/convnext_t/{step}/seed0"


def test_train_eval_then_finished_run_is_not_trained_again(tmp_path, capsys):
    code, out, err = run_here("+step=fewer_norms", *TINY, runs_root=tmp_path, capsys=capsys)
    assert code == 0, err
    run_dir = tmp_path / RUN.format(step="fewer_norms")
    s = summary(run_dir)
    assert s["status"] == "done" and s["step"] == "fewer_norms" and s["order"] == 14 and s["epochs"] == 2
    assert sorted(set(s) - set(record.FIELDS)) == []  # the run record's schema holds every field the trainer writes
    assert s["label"] == "fewer norms" and s["roadmap"] == "convnext_t" and s["scale"] == "embedded" and s["seed"] == 0
    assert s["parent"] == "fewer_activations" and s["section"] == "micro design" and s["paper_top1_std"] == 0.09
    assert s["params"] > 10_000 and 0 < s["gmacs"] < 0.01 and s["paper_top1"] == 81.41
    assert 0 <= s["final_top1"] <= 100 and s["final_top1"] <= s["best_top1"] and s["img_s"] > 0
    lines = metrics(run_dir)
    assert [m["epoch"] for m in lines] == [1, 2]
    assert set(lines[0]) >= {"train_loss", "lr", "val_top1", "val_top5", "img_s", "seconds"}
    assert f"top-1 {s['final_top1']:.2f}" in out
    cfg_text = (run_dir / "config.yaml").read_text()
    assert "norms: one" in cfg_text and "step: fewer_norms" in cfg_text
    assert torch.load(run_dir / "last.pt", weights_only=True)["epoch"] == 2
    code, again, err = run_here("+step=fewer_norms", *TINY, runs_root=tmp_path, capsys=capsys)
    assert code == 0 and "already finished (done)" in again and "epoch 1/2" not in again, err
    assert metrics(run_dir) == lines
    code, overwrite, err = run_here("+step=fewer_norms", *TINY, "train.overwrite=true", runs_root=tmp_path,
                                    capsys=capsys)
    assert code == 0 and "epoch 2/2" in overwrite, err


def test_killed_run_resumes_to_the_same_result(tmp_path, capsys):
    """The run is killed in a process of its own; the run straight through and the resumed one train here."""
    args = ["+step=layer_norm", *TINY, "train.epochs=4", "data.train_size=512"]
    assert run_here(*args, runs_root=tmp_path / "straight", capsys=capsys)[0] == 0
    expected = metrics(tmp_path / "straight" / RUN.format(step="layer_norm"))

    run_dir = tmp_path / "killed" / RUN.format(step="layer_norm")
    cmd = [sys.executable, str(ROOT / "run.py"), *args, f"runs_root={tmp_path / 'killed'}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run_dir / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(metrics(run_dir))
    assert 1 <= done < 4 and not (run_dir / "summary.json").exists()

    code, resumed, err = run_here(*args, runs_root=tmp_path / "killed", capsys=capsys)
    shown = run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir
    assert code == 0 and f"resumed after epoch {done}/4 from {shown / 'last.pt'}" in resumed, err
    got = metrics(run_dir)
    assert [m["epoch"] for m in got] == [1, 2, 3, 4]
    for a, b in zip(got, expected):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5, abs=1e-6)
        assert a["val_top1"] == b["val_top1"] and a["lr"] == b["lr"]


def test_torchrun_on_a_fresh_checkout_prepares_the_data_once(tmp_path):
    """Two processes start with no data folder: one unpacks Fashion-MNIST, the other waits, both train one run."""
    data_root = tmp_path / "fresh" / "fashion_mnist"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           str(ROOT / "run.py"), "+step=separate_downsampling", f"data.root={data_root}", "data.download=false",
           "model.width_multiplier=0.125", "train.batch_size=64", "train.epochs=1", "train.max_steps_per_epoch=3",
           "eval.robustness_images=64", f"runs_root={tmp_path}"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr
    s = summary(tmp_path / RUN.format(step="separate_downsampling"))
    assert s["world_size"] == 2 and s["status"] == "done" and s["epochs"] == 1 and s["dataset"] == "fashion_mnist"
    assert s["threads"] == 1  # train.threads=auto follows OMP_NUM_THREADS
    assert p.stdout.count("epoch 1/1") == 1  # only rank 0 talks
    raw = data_root / "FashionMNIST" / "raw"
    assert sorted(f.name for f in raw.iterdir()) == sorted(data_lib.FASHION_FILES)  # no temporary file left
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 47_040_016
    # 10000 test images, split over the two processes and summed: top-1 is a multiple of 1/10000
    assert s["final_top1"] * 100 == pytest.approx(round(s["final_top1"] * 100), abs=1e-6)
    # robustness: the 64 images shared out over the ranks and summed, as the clean evaluation is
    r = s["robustness"]
    assert r["images"] == 64 and all(v * 64 / 100 == pytest.approx(round(v * 64 / 100)) for v in r["top1"]["jpeg"])


def test_two_processes_on_one_run_directory(tmp_path, capsys):
    """The second process on a run directory (here, the test's own) gets a one-line error naming the first; the
    first finishes."""
    args = ["+step=layer_norm", *TINY, "train.epochs=4", "data.train_size=1024"]
    cmd = [sys.executable, str(ROOT / "run.py"), *args, f"runs_root={tmp_path}"]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "WANDB_MODE": "disabled"})
    run_dir = tmp_path / RUN.format(step="layer_norm")
    deadline = time.time() + 120
    while not (run_dir / ".lock.owner").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    second_code, _, second_err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    lines = second_err.strip().splitlines()
    assert second_code == 2 and len(lines) == 1, second_err
    assert lines[0].startswith(f"error: {run_dir} is being trained by pid {first.pid} on ")
    assert lines[0].endswith("; wait for it to finish or stop it")
    s = summary(run_dir)
    assert s["status"] == "done" and s["epochs"] == 4 and [m["epoch"] for m in metrics(run_dir)] == [1, 2, 3, 4]
    assert not (run_dir / ".lock.owner").exists()
    code, again, _ = run_here(*args, runs_root=tmp_path, capsys=capsys)  # the lock went with its process
    assert code == 0 and "already finished (done)" in again


def test_diverged_run_is_marked_not_a_traceback(tmp_path, capsys):
    code, _, err = run_here("+step=separate_downsampling", *TINY, "recipe.lr=1e12", "recipe.warmup=0",
                            runs_root=tmp_path, capsys=capsys)  # an exception would fail the test here
    assert code == 1 and "Traceback" not in err
    assert "diverged: loss is nan" in err or "diverged: loss is inf" in err
    s = summary(tmp_path / RUN.format(step="separate_downsampling"))
    assert s["status"] == "diverged" and s["message"].startswith("loss is")


BAD = [
    (["+step=kernel_13"], "error: step='kernel_13' is not a step of roadmap convnext_t; its steps: resnet50_classic, "),
    ([], "error: no step given: add +step=<name>, one of resnet50_classic, resnet50, stage_ratio"),
    (["+step=resnet200"], "error: step='resnet200' is not a step of roadmap convnext_t and does not build on one"),
    (["+step=resnet_d"], "error: step='resnet_d' is not a step of roadmap convnext_t and does not build on one"),
    (["+step=gelu", "roadmap=r18"], "error: roadmap='r18': no roadmap/r18.yaml in conf/ or the config dirs; roadmaps:"),
    (["+step=gelu", "train.precision=fp8"], "error: train.precision='fp8': must be one of auto, mixed, bf16, fp16,"),
    (["+step=gelu", "model.kernel_size=4"], "error: model.kernel_size=4: must be one of (3, 5, 7, 9, 11)"),
    (["+step=gelu", "model.norm=group"], "error: model.norm='group': must be one of batch, layer"),
    (["+step=gelu", "data=imagefolder"], "error: data.root is required for data=imagefolder"),
    (["+step=gelu", "data=imagefolder", "data.root=/nonexistent"], "error: data.root=/nonexistent: no train/ folder"),
    (["+step=gelu", "data=cifar10", "data.download=false", "data.root=/nonexistent"],
     "error: cifar10 not found in data.root=/nonexistent and not downloadable"),
    (["+step=gelu", "recipe.optimizer=lamb"], "error: recipe.optimizer='lamb': must be one of adamw, sgd"),
    (["+step=gelu", "train.device=tpu"], "error: train.device='tpu': must be one of auto, cuda, mps, cpu"),
    (["+step=gelu", "train.epochs=abc"], "error: train.epochs='abc': must be an integer >= 1"),
    (["+step=gelu", "model.kernal_size=3"], "error: Could not override 'model.kernal_size'."),
    (["+step=gelu", "scale=huge"], "error: In 'config': Could not find 'scale/huge'"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    code, _, err = run_here(*args, runs_root=tmp_path, capsys=capsys)  # run.py's entry point, in this process
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(message), lines[0]
    assert not list(tmp_path.rglob("*")), "a rejected run must write nothing"


def test_bad_input_from_a_fresh_interpreter(tmp_path):
    """The same through `python run.py` itself, for two kinds of bad input (one rejected before Hydra, one by the
    trainer)."""
    for args, message in (BAD[0], BAD[12]):
        p = run(*args, runs_root=tmp_path, check=False)
        assert p.returncode == 2 and p.stderr.strip().splitlines() == [p.stderr.strip()], p.stderr
        assert p.stderr.startswith(message)
    assert not list(tmp_path.rglob("*"))


def test_a_users_own_step_trains_and_follows_its_parent(tmp_path, capsys):
    """One yaml in a config dir of one's own: built on ConvNeXt-T, one switch changed, no published number."""
    from roadmap.report import build as report
    from roadmap.report.runs import ordered_steps
    from roadmap.report.step_stats import step_table
    from test_model import write_user_step

    write_user_step(tmp_path / "conf")
    p = run("--config-dir", str(tmp_path / "conf"), "+step=dw_kernel_3", *TINY, "train.epochs=1",
            runs_root=tmp_path / "runs")  # a fresh interpreter: the trainer reads the config dir from Hydra's app
    s = summary(tmp_path / "runs" / RUN.format(step="dw_kernel_3"))
    assert s["status"] == "done" and s["parent"] == "separate_downsampling" and s["order"] is None
    assert s["label"] == "dw_kernel_3" and s["section"] == "micro design" and s["paper_top1"] is None
    assert "kernel_size: 3" in (tmp_path / "runs" / RUN.format(step="dw_kernel_3") / "config.yaml").read_text()
    assert "[dw_kernel_3] done" in p.stdout
    assert run_here("+step=separate_downsampling", *TINY, "train.epochs=1", runs_root=tmp_path / "runs",
                    capsys=capsys)[0] == 0
    out = tmp_path / "runs" / "embedded" / "convnext_t"
    written = report.report(out, tmp_path / "report")
    steps = list(report.load_runs(out)["step"])
    table = step_table(report.load_runs(out), ordered_steps(report.roadmap_of(
        report.load_runs(out)), report.load_runs(out)))
    names = list(table["step"])
    assert names[-2:] == ["separate_downsampling", "dw_kernel_3"] and len(names) == 18 and len(steps) == 2
    row = table.set_index("step").loc["dw_kernel_3"]
    assert row["compared_to"] == "separate_downsampling" and row["verdict"] == "1 seed" and math.isnan(row["paper_top1"])
    md = written[1].read_text()
    mine = [r for r in table_rows(md, "#") if r["step"] == "dw_kernel_3"]
    assert [(r["#"], r["section"]) for r in mine] == [("17", "micro design")]


def test_missing_fashion_mnist_names_the_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(data_lib, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    cfg = compose(["+step=gelu", f"data.root={tmp_path}/fm", "data.download=false"])
    with pytest.raises(ConfigError) as e:
        data_lib.load_tensor_dataset(cfg.data, "cpu")
    assert str(e.value) == (f"Fashion-MNIST not found (RuntimeError): put its four files (or their .gz) in "
                            f"{tmp_path}/fm/FashionMNIST/raw (data.root={tmp_path}/fm), or install Debian's "
                            f"dataset-fashion-mnist ({tmp_path}/nowhere), or allow data.download=true with internet")


def test_corrupt_checkpoint_and_different_architecture_are_refused(tmp_path, capsys):
    assert run_here("+step=gelu", *TINY, "train.epochs=1", runs_root=tmp_path, capsys=capsys)[0] == 0
    run_dir = tmp_path / RUN.format(step="gelu")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    code, _, err = run_here("+step=gelu", *TINY, "train.epochs=1", "model.kernel_size=5", runs_root=tmp_path,
                            capsys=capsys)
    assert code == 2 and "holds a run with a different configuration (model.kernel_size: 7 -> 5)" in err
    (run_dir / "summary.json").unlink()
    (run_dir / "last.pt").write_bytes(b"not a checkpoint")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    code, _, err = run_here("+step=gelu", *TINY, "train.epochs=1", runs_root=tmp_path, capsys=capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip() == (f"error: checkpoint {run_dir}/last.pt is corrupt or unreadable (UnpicklingError); "
                           "move it away or rerun with train.overwrite=true to start over")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


@pytest.mark.parametrize("scale", ["embedded", "cifar", "imagenette", "imagenet"])
@pytest.mark.parametrize("recipe", ["modern", "classic"])
def test_every_scale_and_recipe_composes(scale, recipe):
    cfg = compose(["+step=inverted_bottleneck", f"scale={scale}", f"recipe={recipe}"])
    assert cfg.scale.name == scale and cfg.recipe.name == recipe
    assert cfg.model.block == "inverted" and cfg.model.width == 96  # scales never change a step's switches
    model_cfg = roadmap.config.model_config(cfg)
    assert model_cfg.num_classes == {"embedded": 10, "cifar": 100, "imagenette": 10, "imagenet": 1000}[scale]
    assert cfg.run_dir == f"runs/{scale}/convnext_t/inverted_bottleneck/seed0"
    m = roadmap.RoadmapNet(model_cfg)
    opt = roadmap.train.recipe.optimizer(m, cfg.recipe, cfg.train.batch_size)
    sched = roadmap.train.recipe.schedule(opt, cfg.recipe, 1000)
    lrs = []
    for _ in range(1000):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    peak = cfg.recipe.lr * cfg.train.batch_size / cfg.recipe.lr_batch
    assert max(lrs) == pytest.approx(peak, rel=1e-6)
    if recipe == "classic":
        assert lrs[0] == peak and lrs[400] == pytest.approx(peak * 0.1) and lrs[999] == pytest.approx(peak * 1e-3)
    else:
        assert lrs[0] < peak / 10 and lrs[999] < peak / 100


def test_weight_decay_skips_norms_and_biases():
    cfg = compose(["+step=separate_downsampling"])
    m = roadmap.build_model("separate_downsampling")
    decay, no_decay = roadmap.train.recipe.optimizer(m, cfg.recipe, 128).param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])


def _runtime():
    return Runtime(torch.device("cpu"))


def test_fashion_mnist_from_the_debian_files(tmp_path):
    assert data_lib.DEBIAN_FASHION_MNIST.is_dir(), "make test installs Debian's dataset-fashion-mnist"
    cfg = compose(["+step=gelu", f"data.root={tmp_path}", "data.download=false"])
    train, val = data_lib.load_tensor_dataset(cfg.data, "cpu")
    assert train.images.shape == (60000, 1, 32, 32) and val.images.shape == (10000, 1, 32, 32)
    assert train.images.dtype == torch.uint8 and torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(val.labels).tolist() == [1000] * 10
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").stat().st_size == 47_040_016
    loader, _ = build_loaders(cfg, _runtime(), 32)
    x, y = next(iter(loader))
    assert x.shape == (32, 3, 32, 32) and x.dtype == torch.float32 and abs(x.mean().item()) < 0.5


def test_augmented_tensor_batches_on_the_device():
    cfg = compose(["+step=gelu", "data=synthetic", "recipe.randaugment={num_ops: 2, magnitude: 9}",
                   "recipe.erasing=1.0", "recipe.mixup=0.8", "recipe.cutmix=1.0"])
    loader, val = build_loaders(cfg, _runtime(), 64)
    assert len(loader) == 512 // 64 and len(val) == 2
    loader.epoch = 3
    a = [x for x, _ in loader]
    torch.manual_seed(0)
    assert not torch.equal(a[0], next(iter(val))[0])
    x, y = a[0], next(iter(loader))[1]
    mixed_x, soft = roadmap.data.batch_mix(cfg.recipe, 10)(x, y)
    assert soft.shape == (64, 10) and torch.allclose(soft.sum(1), torch.ones(64))
    assert (x == 0).float().mean() > 0.01  # random erasing blanked some pixels (value 0)


def test_image_folder_dataset_on_a_generated_tree(tmp_path, capsys):
    for part, n in (("train", 6), ("val", 2)):
        for c in ("cat", "dog", "fish"):
            (tmp_path / part / c).mkdir(parents=True)
            for i in range(n):
                pixels = torch.randint(0, 255, (40, 48, 3), dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(tmp_path / part / c / f"{i}.png")
    cfg = compose(["+step=gelu", "scale=imagenette", f"data.root={tmp_path}", "data.num_classes=3",
                   "data.resolution=32", "train.workers=0"])
    train, val = build_loaders(cfg, _runtime(), 4)
    x, y = next(iter(train))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.max() < 3
    assert sum(len(b[1]) for b in val) == 6 and len(train) == 18 // 4
    bad = compose(["+step=gelu", "scale=imagenette", f"data.root={tmp_path}", "train.workers=0"])
    with pytest.raises(ConfigError, match=r"data.num_classes=10 but .*/train has 3 class folders"):
        build_loaders(bad, _runtime(), 4)
    code, out, err = run_here("+step=separate_downsampling", "scale=imagenette", f"data.root={tmp_path}",
                              "data.num_classes=3", "data.resolution=32", "train.workers=0", "train.batch_size=6",
                              "train.epochs=1", "train.max_steps_per_epoch=2", "model.width_multiplier=0.125",
                              runs_root=tmp_path / "runs", capsys=capsys)
    folder_run = tmp_path / "runs" / "imagenette/convnext_t/separate_downsampling/seed0"
    assert code == 0 and summary(folder_run)["status"] == "done", (out, err)
    assert "1 epoch x 2 steps (capped) of 6" in out  # 3 batches in the folder, capped at 2
    assert summary(folder_run)["robustness"]["images"] == 6  # its val/ images, decoded as evaluation sees them
    assert torch.load(folder_run / "last.pt", weights_only=True)["scheduler"]["last_epoch"] == 2


def test_wandb_logger_needs_no_account(tmp_path):
    run("+step=gelu", *TINY, "train.epochs=1", "logger=wandb", runs_root=tmp_path,
        env={"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}, stdin=subprocess.DEVNULL)
    s = summary(tmp_path / RUN.format(step="gelu"))
    assert s["status"] == "done"
    runs = list((tmp_path / RUN.format(step="gelu") / "wandb").glob("offline-run-*"))
    assert len(runs) == 1


def test_bf16_autocast_and_channels_last_on_cpu(tmp_path, capsys):
    code, _, err = run_here("+step=separate_downsampling", *TINY, "train.epochs=1", "train.precision=bf16",
                            "train.channels_last=true", runs_root=tmp_path, capsys=capsys)
    assert code == 0, err
    s = summary(tmp_path / RUN.format(step="separate_downsampling"))
    assert s["status"] == "done" and json.dumps(s)


def test_compile_on_cpu_trains_a_tiny_model(tmp_path):
    run("+step=separate_downsampling", *TINY, "train.epochs=1", "train.compile=true", "model.depths=[1,1,1,1]",
        runs_root=tmp_path)
    s = summary(tmp_path / RUN.format(step="separate_downsampling"))
    assert s["status"] == "done" and s["epochs"] == 1 and 0 <= s["final_top1"] <= 100
    checkpoint = torch.load(tmp_path / RUN.format(step="separate_downsampling") / "last.pt", weights_only=True)
    assert not any(k.startswith("_orig_mod") for k in checkpoint["model"])  # the plain model's weights are saved


def test_a_capped_or_otherwise_different_run_is_not_taken_for_the_full_one(tmp_path, capsys):
    run_dir = tmp_path / RUN.format(step="gelu")
    code, out, _ = run_here("+step=gelu", *TINY, "train.max_steps_per_epoch=2", runs_root=tmp_path, capsys=capsys)
    s = summary(run_dir)
    assert code == 0 and "2 epochs x 2 steps (capped) of 64" in out
    assert (s["capped"], s["steps_per_epoch"], s["full_steps_per_epoch"]) == (True, 2, 4)
    assert s["fingerprint"]["max_steps_per_epoch"] == 2 and s["fingerprint"]["precision"] == "fp32"
    again = run_here("+step=gelu", *TINY, "train.max_steps_per_epoch=2", runs_root=tmp_path, capsys=capsys)
    assert "already finished (done, capped at 2 steps per epoch (a smoke run))" in again[1]
    for extra, diff in (([], "max_steps_per_epoch: 2 -> None)"),
                        (["train.max_steps_per_epoch=2", "train.precision=bf16"], "precision: fp32 -> bf16)")):
        code, out, err = run_here("+step=gelu", *TINY, *extra, runs_root=tmp_path, capsys=capsys)
        assert code == 2 and f"holds a run with a different configuration ({diff}" in err, err
        assert len(err.strip().splitlines()) == 1 and "epoch 1/2" not in out
    assert summary(run_dir) == s


def test_a_run_finished_before_the_cap_was_fingerprinted_still_counts(tmp_path, capsys):
    run_dir = tmp_path / RUN.format(step="gelu")
    assert run_here("+step=gelu", *TINY, "train.epochs=1", runs_root=tmp_path, capsys=capsys)[0] == 0
    old = summary(run_dir)
    for key in ("max_steps_per_epoch", "precision"):
        del old["fingerprint"][key]
    for key in ("capped", "steps_per_epoch", "full_steps_per_epoch"):
        del old[key]
    (run_dir / "summary.json").write_text(json.dumps(old))
    code, out, _ = run_here("+step=gelu", *TINY, "train.epochs=1", runs_root=tmp_path, capsys=capsys)
    assert code == 0 and "already finished (done) in" in out
    code, _, err = run_here("+step=gelu", *TINY, "train.epochs=1", "train.max_steps_per_epoch=1", runs_root=tmp_path,
                            capsys=capsys)
    assert code == 2 and "(max_steps_per_epoch: None -> 1)" in err


def test_without_arguments_run_py_lists_the_steps():
    p = subprocess.run([sys.executable, str(ROOT / "run.py")], cwd=ROOT, capture_output=True, text=True)
    lines = p.stdout.splitlines()
    assert p.returncode == 0 and p.stderr == ""
    assert lines[0].startswith("Modernizing a ConvNet: ResNet-50 → ConvNeXt-T (convnext_t): python run.py +step=")
    assert [line.split()[0] for line in lines[1:]] == roadmap.load_roadmap("convnext_t").names() + ["swin_t"]
    assert lines[1].split()[1] == "76.13" and lines[-2].split()[1] == "81.97" and "(branch)" in lines[9]
    assert lines[-1].split()[1] == "81.30" and lines[-1].endswith("(reference, trained alike: +reference=swin_t)")


def _start_and_interrupt(args, run_dir, sig):
    """python run.py <args>, stopped by `sig` once its first epoch's checkpoint exists. The child starts with SIGINT
    at its default even where the tests run as a background job (which inherits SIGINT ignored, as shells do)."""
    cmd = [sys.executable, str(ROOT / "run.py"), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "WANDB_MODE": "disabled"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (run_dir / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_says_so_in_one_line_and_resumes(tmp_path, capsys, sig, code):
    args = ["+step=layer_norm", *TINY, "train.epochs=3", "data.train_size=512", f"runs_root={tmp_path}"]
    run_dir = tmp_path / RUN.format(step="layer_norm")
    rc, out, err = _start_and_interrupt(args, run_dir, sig)
    done = len(metrics(run_dir))
    assert rc == code and 1 <= done < 3, (rc, out, err)
    assert err.strip().splitlines() == [err.strip()] and "Traceback" not in err
    assert err.startswith(f"interrupted: layer_norm seed 0 stopped by {sig.name} during epoch {done + 1}/3 "
                          f"(last.pt holds epoch {done}); rerun the same command to resume -> {run_dir}")
    s = summary(run_dir)
    assert s["status"] == "interrupted" and s["epochs"] == done and "final_top1" not in s
    assert torch.load(run_dir / "last.pt", weights_only=True)["epoch"] == done
    rc, resumed, err = run_here(*args[:-1], runs_root=tmp_path, capsys=capsys)
    assert rc == 0 and f"resumed after epoch {done}/3" in resumed, err
    assert [m["epoch"] for m in metrics(run_dir)] == [1, 2, 3] and summary(run_dir)["status"] == "done"


def test_an_interrupted_multirun_stops_at_once(tmp_path):
    args = ["-m", "+step=layer_norm,gelu", *TINY, "train.epochs=3", "data.train_size=512", f"runs_root={tmp_path}"]
    rc, out, err = _start_and_interrupt(args, tmp_path / RUN.format(step="layer_norm"), signal.SIGINT)
    assert rc == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted: layer_norm seed 0 stopped by SIGINT during epoch")
    assert not (tmp_path / RUN.format(step="gelu")).exists()


def test_an_ablation_step_that_cannot_be_built_is_recorded_for_the_report(tmp_path, capsys):
    from roadmap.ablation import read_invalid

    code, _, err = run_here("+sweep=isolated", "+step=fewer_activations", *TINY, runs_root=tmp_path, capsys=capsys)
    message = ("ablation=isolated: step fewer_activations's switches (activations) applied alone to the baseline are "
               "not a valid network: model.activations='one'")
    assert code == 2 and err.startswith(f"error: {message}")
    folder = tmp_path / "embedded" / "convnext_t" / "isolated"
    invalid = read_invalid(folder, "isolated")
    assert list(invalid) == ["fewer_activations"] and invalid["fewer_activations"] \
        .startswith(message)
    assert [p.name for p in folder.iterdir()] == ["invalid.jsonl"]


def test_threads_follow_the_setting_the_environment_and_the_local_ranks(monkeypatch):
    from roadmap.train.runtime import threads

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads(5) == 5 and threads("auto") == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert threads("auto") == cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * cores))  # more processes than cores: one thread each
    assert threads("auto") == 1



PARALLEL = ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]


def test_a_killed_parallel_sweep_reruns_only_what_is_missing(tmp_path, capsys):
    """JOBS=2: both runs train at once in their own processes, each with its share of the cores; killed part-way,
    the same command finishes only what was missing, and the report reads both."""
    sweep_args = ["+step=resnet50,stage_ratio", *TINY, "train.epochs=20"]
    args = ["-m", *sweep_args, *PARALLEL]
    cmd = [sys.executable, str(ROOT / "run.py"), *args, f"runs_root={tmp_path}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": ""}  # the trainer sets each run's threads
    sweep = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    ckpts = [tmp_path / RUN.format(step=step) / "last.pt" for step in ("resnet50", "stage_ratio")]
    deadline = time.time() + 120
    while not all(c.exists() for c in ckpts) and time.time() < deadline and sweep.poll() is None:
        time.sleep(0.2)
    os.killpg(sweep.pid, signal.SIGTERM)  # the sweep and its workers, as a scheduler or Ctrl-C in a terminal stop it
    sweep.wait(timeout=60)
    deadline = time.time() + 60
    while time.time() < deadline:  # every worker gone before the rerun
        try:
            os.killpg(sweep.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    assert all(c.exists() for c in ckpts)
    before = {c.parent.parent.name: len(metrics(c.parent)) for c in ckpts}
    assert all(0 < n < 20 for n in before.values()), before  # both stopped part-way
    p = run(*args, runs_root=tmp_path, env={"OMP_NUM_THREADS": ""})
    assert "Joblib.Parallel(n_jobs=2" in p.stdout + p.stderr
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    for step, n in before.items():
        assert f"[{step}] resumed after epoch" in p.stdout
        epochs = [m["epoch"] for m in metrics(tmp_path / RUN.format(step=step))]
        assert epochs == list(range(1, 21)), p.stdout + p.stderr
        s = summary(tmp_path / RUN.format(step=step))
        assert (s["status"], s["threads"]) == ("done", share), p.stderr
    code, again, _ = multirun_here(*sweep_args, runs_root=tmp_path, capsys=capsys)  # taken as finished by any launcher
    assert code == 0 and again.count("already finished") == 2
    assert report_main([str(tmp_path / "embedded" / "convnext_t")]) == 0
    import pandas as pd

    steps = pd.read_csv(tmp_path / "embedded" / "convnext_t" / "report" / "steps.csv").set_index("step")
    assert list(steps.loc[["resnet50", "stage_ratio"], "status"]) == ["done", "done"]
    assert (steps.loc[["resnet50", "stage_ratio"], "seeds"] == 1).all()


def test_make_roadmaps_launcher_follows_jobs_the_gpus_and_whether_ray_is_there(monkeypatch, capsys):
    from roadmap.train import launch

    assert launch.overrides("1", gpus=0, cores=16, ray=True) == []
    joblib = ["hydra/launcher=parallel", "hydra.launcher.n_jobs="]
    assert launch.overrides("auto", gpus=0, cores=16, ray=False) == [joblib[0], joblib[1] + "16"]
    assert launch.overrides("auto", gpus=4, cores=16, ray=False) == [joblib[0], joblib[1] + "4"]
    assert launch.overrides("auto", gpus=0, cores=16, ray=True) == ["hydra/launcher=ray_parallel",
                                                                    "hydra.launcher.ray.remote.num_cpus=1"]
    assert launch.overrides("auto", gpus=4, cores=16, ray=True) == [
        "hydra/launcher=ray_parallel", "hydra.launcher.ray.remote.num_cpus=4", "hydra.launcher.ray.remote.num_gpus=1"]
    assert launch.overrides("3", gpus=0, cores=16, ray=True)[1] == "hydra.launcher.ray.remote.num_cpus=5"
    assert launch.overrides("auto", gpus=0, cores=1, ray=False) == []  # one core: one run at a time
    monkeypatch.setattr(launch, "ray_installed", lambda: False)
    assert launch.main(["2"]) == 0
    out = capsys.readouterr()
    assert out.out.split() == ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]
    assert out.err == launch.RAY_MISSING + "\n" and "pip install -e '.[ray]'" in out.err
    assert launch.main(["1"]) == 0 and capsys.readouterr() == ("\n", "")  # one after the other: nothing to say
    assert launch.main(["0"]) == 2
    assert capsys.readouterr().err == "error: JOBS='0': auto, 1 (one run after the other) or how many runs at once\n"
    assert launch.main(["2", "4"]) == 2  # it took the 2 and dropped the 4
    assert capsys.readouterr().err == "error: JOBS='2 4': one value, auto or how many runs at once\n"
    assert launch.main(["²"]) == 2  # a digit to str.isdigit, not to int: a ValueError's own words
    assert capsys.readouterr().err == "error: JOBS='²': auto, 1 (one run after the other) or how many runs at once\n"


# -- issue 30: settings that cannot run are refused before anything is written -------------------------------------

CANNOT_RUN = [
    (["data.num_classes=1"], "error: data.num_classes=1: must be an integer >= 2"),
    (["train.batch_size=1"], "error: train.batch_size=1: this network has BatchNorm, which needs at least 2 images "
                             "per process in training; must be >= 2"),
    (["train.device=mps"], "error: train.device=mps: torch sees no MPS device here; available: auto, "),
    (["model.in_channels=1"], "error: model.in_channels=1: the data gives the network 3-channel images (grayscale is "
                              "repeated); must be 3"),
    (["model.in_channels=4"], "error: model.in_channels=4: the data gives the network 3-channel images (grayscale is "
                              "repeated); must be 3"),
    (["data.mean=[0.5]", "data.std=[0.5]"], "error: data.mean=[0.5]: must be 3 numbers, one per channel of the images "
                                            "the network sees (grayscale data is repeated to 3)"),
    (["data.mean=[0.5,0.5]", "data.std=[0.5,0.5]"], "error: data.mean=[0.5, 0.5]: must be 3 numbers, one per "
                                                    "channel of the images the network sees (grayscale data is "
                                                    "repeated to 3)"),
    (["data.crop_padding=40"], "error: data.crop_padding=40: must be <= 16 at data.resolution=32 (half the image: "
                               "every random crop keeps at least half of it)"),
    (["+step=separate_downsampling", "data.resolution=8"],
     "error: data.resolution=8: this network cannot take 8x8 images (Calculated padded input size per channel: "
     "(1 x 1). Kernel size: (2 x 2). Kernel size can't be greater than actual input size)"),
]


@pytest.mark.parametrize("args, message", CANNOT_RUN, ids=[" ".join(a) for a, _ in CANNOT_RUN])
def test_settings_that_cannot_run_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    step = [] if any(a.startswith("+step=") for a in args) else ["+step=gelu"]
    code, _, err = run_here(*step, *TINY, *args, runs_root=tmp_path, capsys=capsys)
    assert code == 2 and err.strip().splitlines() == [err.strip()], err
    assert err.strip().startswith(message), err
    assert list(tmp_path.rglob("*")) == []  # no config.yaml, metrics.jsonl or failed summary.json


def test_a_device_torch_does_not_have_is_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run_here("+step=gelu", *TINY, "train.device=cuda", runs_root=tmp_path, capsys=capsys)
    assert code == 2 and err == "error: train.device=cuda: torch sees no CUDA device here; available: auto, cpu\n"
    assert list(tmp_path.rglob("*")) == []


def test_batchnorm_needs_two_images_per_process_and_only_batchnorm(tmp_path):
    from roadmap.config import model_config
    from roadmap.config import validate
    from roadmap.train.preflight import runnable

    def check(step, batch, world):
        cfg = compose([f"+step={step}", *TINY, f"train.batch_size={batch}"])
        runnable(validate(cfg), model_config(cfg), world)

    with pytest.raises(ConfigError, match=r"^train.batch_size=2 over 2 processes: this network has BatchNorm, which "
                                          r"needs at least 2 images per process in training; must be >= 4$"):
        check("gelu", 2, 2)
    check("gelu", 4, 2)
    check("layer_norm", 1, 1)  # LayerNorm and Swin train on one image
    cfg = compose(["+reference=swin_t", *TINY, "train.batch_size=1"])
    runnable(validate(cfg), model_config(cfg), 1)


@pytest.mark.parametrize("where", ["file", "proc", "read-only"])
def test_a_runs_root_that_cannot_be_written_is_one_line(tmp_path, capsys, where):
    root = {"file": tmp_path / "a_file", "proc": "/proc/no/runs", "read-only": tmp_path / "ro" / "runs"}[where]
    if where == "file":
        root.write_text("x")
        message = f"error: runs_root={root}: {root} is not a folder"
    elif where == "proc":
        message = "error: runs_root=/proc/no/runs: cannot write in /proc ("
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes in read-only folders")
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        message = f"error: runs_root={root}: cannot write in {tmp_path / 'ro'} (Permission denied)"
    code, _, err = run_here("+step=gelu", *TINY, runs_root=root, capsys=capsys)
    assert code == 2 and err.strip().splitlines() == [err.strip()] and err.startswith(message), err
    assert not os.path.isdir(root) and [p.name for p in tmp_path.rglob("*")] in ([], ["a_file"], ["ro"])


@pytest.mark.parametrize("where", ["file", "proc", "sweep_dir"])
def test_a_multirun_whose_folder_cannot_be_written_is_one_line(tmp_path, capsys, where):
    """Hydra makes a multirun's folder (runs_root/.multirun) before any job runs: its OSError was a traceback."""
    (tmp_path / "a_file").write_text("x")
    root, extra = {"file": (tmp_path / "a_file" / "runs", []), "proc": ("/proc/no/runs", []),
                   "sweep_dir": (tmp_path / "runs", ["hydra.sweep.dir=/proc/no/sweep"])}[where]
    message = {"file": f"error: runs_root={root}: {tmp_path / 'a_file'} is not a folder\n",
               "proc": "error: runs_root=/proc/no/runs: cannot write in /proc (No such file or directory)\n",
               "sweep_dir": "error: hydra.sweep.dir=/proc/no/sweep: cannot write in /proc (No such file or directory)\n"}
    code, _, err = multirun_here("+step=gelu,kernel_7", *TINY, "train.epochs=1", *extra, runs_root=root, capsys=capsys)
    assert (code, err) == (2, message[where])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a_file"]


def test_num_classes_below_the_datasets_labels_is_refused(monkeypatch):
    from roadmap.config import validate

    cfg = compose(["+step=gelu", *TINY, "data.num_classes=5"])
    ten = data_lib.TensorSplit(torch.zeros(20, 3, 32, 32, dtype=torch.uint8), torch.arange(20) % 10)
    monkeypatch.setattr(roadmap.data, "load_tensor_dataset", lambda d, device: (ten, ten))  # what the trainer calls
    with pytest.raises(ConfigError, match=r"^data.num_classes=5: synthetic has 10 classes \(labels 0 to 9\); "
                                          r"must be >= 10$"):
        build_loaders(validate(cfg), _runtime(), 4)


# -- issue 30: overwriting never loses work -------------------------------------------------------------------------

def _files(run_dir):
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and not p.name.startswith(".lock")}


def test_overwriting_checks_first_and_keeps_the_old_run_until_the_new_ones_first_checkpoint(tmp_path, capsys,
                                                                                           monkeypatch):
    """The issue's sequence: a finished run, then train.overwrite=true with settings that cannot run (refused before
    anything is touched), then one that crashes in its first epoch, then one interrupted there: the old run stays as
    it was each time, and the original command finds it finished."""
    from roadmap.train import loop as train_lib

    args = ["+step=gelu", *TINY, "train.epochs=1"]
    assert run_here(*args, runs_root=tmp_path, capsys=capsys)[0] == 0
    run_dir = tmp_path / RUN.format(step="gelu")
    before = _files(run_dir)
    code, _, err = run_here(*args, "train.overwrite=true", "train.batch_size=1", runs_root=tmp_path, capsys=capsys)
    assert code == 2 and err.startswith("error: train.batch_size=1: this network has BatchNorm") and \
        _files(run_dir) == before

    def crash(*a, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(train_lib, "train_epoch", crash)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_here(*args, "train.overwrite=true", "train.max_steps_per_epoch=2", runs_root=tmp_path, capsys=capsys)
    assert _files(run_dir) == before and not (run_dir / ".replacing").exists()

    def interrupt(*a, **k):
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(train_lib, "train_epoch", interrupt)
    with pytest.raises(train_lib.Interrupted, match=r"^gelu seed 0 stopped by SIGTERM during epoch 1/1 of the run "
                                                    r"replacing the one in .*/gelu/seed0, which is kept as it was; "
                                                    r"train.overwrite=true replaces it$"):
        run_here(*args, "train.overwrite=true", runs_root=tmp_path, capsys=capsys)
    assert _files(run_dir) == before and not (run_dir / ".replacing").exists()
    monkeypatch.undo()
    code, out, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 0 and "already finished (done)" in out and _files(run_dir) == before, err


def test_a_replacement_killed_before_its_first_checkpoint_leaves_the_old_run(tmp_path, capsys):
    """What a SIGKILL leaves: the staged files beside the old run, which the next run discards."""
    args = ["+step=gelu", *TINY, "train.epochs=1"]
    assert run_here(*args, runs_root=tmp_path, capsys=capsys)[0] == 0
    run_dir = tmp_path / RUN.format(step="gelu")
    before = _files(run_dir)
    staged = run_dir / ".replacing"
    staged.mkdir()
    (staged / "config.yaml").write_text("train: {batch_size: 32}\n")
    (staged / "metrics.jsonl").write_text("")
    code, out, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 0 and "already finished (done)" in out and _files(run_dir) == before and not staged.exists()


def test_a_replacing_run_takes_the_old_ones_place_at_its_first_checkpoint(tmp_path, capsys):
    args = ["+step=gelu", *TINY, "train.epochs=1"]
    assert run_here(*args, runs_root=tmp_path, capsys=capsys)[0] == 0
    run_dir = tmp_path / RUN.format(step="gelu")
    old = torch.load(run_dir / "last.pt", weights_only=True)["run"]
    code, out, err = run_here(*args, "train.overwrite=true", "train.max_steps_per_epoch=2", runs_root=tmp_path,
                              capsys=capsys)
    assert code == 0, err
    new = torch.load(run_dir / "last.pt", weights_only=True)
    s = summary(run_dir)
    assert new["run"] != old and s["run"] == new["run"] and [m["run"] for m in metrics(run_dir)] == [new["run"]]
    assert s["status"] == "done" and s["capped"] and s["epochs"] == 1 and "final_top1" in s
    assert "max_steps_per_epoch: 2" in (run_dir / "config.yaml").read_text() and not (run_dir / ".replacing").exists()


def test_files_of_two_runs_are_never_resumed_as_one(tmp_path, capsys):
    """The issue's end state before the fix (metrics and summary gone, the old last.pt kept), and a last.pt of one
    run beside the metrics of another: one line, never `done` with 0 epochs and no top-1."""
    args = ["+step=gelu", *TINY, "train.epochs=1"]
    assert run_here(*args, runs_root=tmp_path, capsys=capsys)[0] == 0
    run_dir = tmp_path / RUN.format(step="gelu")
    (run_dir / "summary.json").unlink()
    lines = (run_dir / "metrics.jsonl").read_text()
    (run_dir / "metrics.jsonl").write_text("")
    code, _, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 2 and err == (f"error: {run_dir}: last.pt holds epoch 1 but metrics.jsonl has its epochs []: the "
                                 f"files are of different runs or damaged; rerun with train.overwrite=true to start "
                                 f"over\n")
    (run_dir / "metrics.jsonl").write_text(lines.replace('"run": "', '"run": "other'))
    code, _, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 2 and "last.pt holds epoch 1 but metrics.jsonl has its epochs []" in err
    assert not (run_dir / "summary.json").exists()
    (run_dir / "metrics.jsonl").write_text(lines)  # the run's own lines: it is finished again, with its top-1
    code, out, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    s = summary(run_dir)
    assert code == 0 and "resumed after epoch 1/1" in out and s["status"] == "done" and s["epochs"] == 1
    assert s["final_top1"] == json.loads(lines)["val_top1"]


def test_damaged_run_files_are_one_line(tmp_path, capsys):
    """A truncated summary.json: the run is read from last.pt and metrics.jsonl; a last.pt that loads but is no
    checkpoint of this run, or does not fit its network: one line, nothing written."""
    args = ["+step=gelu", *TINY, "train.epochs=1"]
    assert run_here(*args, runs_root=tmp_path, capsys=capsys)[0] == 0
    run_dir = tmp_path / RUN.format(step="gelu")
    top1 = summary(run_dir)["final_top1"]
    (run_dir / "summary.json").write_text((run_dir / "summary.json").read_text()[:50])
    code, out, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 0 and summary(run_dir)["status"] == "done" and summary(run_dir)["final_top1"] == top1, err
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    (run_dir / "summary.json").unlink()
    for state, why in (({"epoch": 1}, "is not a checkpoint of this run (it lacks model, optimizer, scheduler, scaler)"),
                       ({**ckpt, "epoch": 7}, "is not a checkpoint of this run (its epoch is 7)"),
                       ({**ckpt, "model": {"w": torch.zeros(1)}}, "does not fit this run's network or optimizer (")):
        torch.save(state, run_dir / "last.pt")
        before = _files(run_dir)
        code, _, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
        assert code == 2 and err.startswith(f"error: checkpoint {run_dir}/last.pt {why}"), err
        assert err.strip().endswith("move it away or rerun with train.overwrite=true to start over")
        assert err.count("\n") == 1 and _files(run_dir) == before


def test_damaged_metrics_summary_and_staging_are_one_line_or_ignored(tmp_path, capsys):
    """Found as a hostile user: binary metrics.jsonl beside a last.pt (a UnicodeDecodeError traceback), a summary
    whose fingerprint is not a record (a TypeError traceback), a file where the staging folder goes."""
    args = ["+step=gelu", *TINY, "train.epochs=1"]
    assert run_here(*args, runs_root=tmp_path, capsys=capsys)[0] == 0
    run_dir = tmp_path / RUN.format(step="gelu")
    good = _files(run_dir)
    (run_dir / "summary.json").write_text(json.dumps({**summary(run_dir), "fingerprint": "x"}))
    code, _, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 2 and err == (f"error: {run_dir}/summary.json is damaged (its fingerprint is 'x'); move it away "
                                 f"or rerun with train.overwrite=true to start over\n")
    (run_dir / "summary.json").unlink()
    (run_dir / "metrics.jsonl").write_bytes(bytes(range(256)))
    code, _, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 2 and err.startswith(f"error: {run_dir}: last.pt holds epoch 1 but metrics.jsonl has its epochs "
                                        f"[]: the files are of different runs or damaged")
    for name, data in good.items():
        (run_dir / name).write_bytes(data)
    (run_dir / ".replacing").write_text("not a folder")
    code, out, err = run_here(*args, "train.overwrite=true", runs_root=tmp_path, capsys=capsys)
    assert code == 0 and summary(run_dir)["status"] == "done" and not (run_dir / ".replacing").exists(), err


def test_a_failure_with_nowhere_to_be_recorded_is_not_a_second_error():
    """A sweep's job refused for its runs_root (a ConfigError) is recorded as failed where it can be: under /proc
    it cannot, and recording it must not raise over the one line that says why."""
    from roadmap import store

    store.write_failure(Path("/proc/no/runs/seed0"), {"step": "gelu", "message": "ConfigError: runs_root"}, create=True)
    assert not Path("/proc/no").exists()


@pytest.mark.parametrize("root, said", [("", "''"), ("' '", "' '"), ("null", "None")])
def test_a_runs_root_that_is_no_path_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, root, said):
    """runs_root= (an unset shell variable) trained into the current folder; runs_root=null was a traceback."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_here("+step=gelu", *TINY, "train.epochs=1", runs_root=root, capsys=capsys)
    assert (code, err) == (2, f"error: runs_root={said}: must be a folder's path (runs_root=. for the current "
                              f"folder)\n")
    assert list(tmp_path.iterdir()) == []


def test_a_runs_root_hydra_reads_as_a_number_is_a_folder(tmp_path, capsys, monkeypatch):
    """runs_root=5 (Hydra gives an int) was a TypeError traceback; it is the folder 5."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_here("+step=gelu", *TINY, "train.epochs=1", "train.max_steps_per_epoch=1",
                              "eval.robustness=false", runs_root=5, capsys=capsys)
    assert code == 0 and summary(tmp_path / "5" / RUN.format(step="gelu"))["status"] == "done", err


def test_a_run_records_what_its_step_changes_versus_its_parent(tmp_path, capsys):
    """What the report holds free between a step and its parent (roadmap.config.step_changes): the switches the step
    changes, and its training where it changes it; composed as published, whatever the run's own overrides."""
    from roadmap.config import step_changes

    assert step_changes("gelu", "kernel_7", "convnext_t", "embedded") == ["activation"]
    assert step_changes("resnet50", "resnet50_classic", "convnext_t", "embedded") == ["recipe"]
    assert step_changes("batch_1024", "resnet50_original", "bag_of_tricks", "cifar") == ["batch_size",
                                                                                           "steps_per_epoch"]
    assert step_changes("mixup", "label_smoothing", "bag_of_tricks", "cifar") == ["recipe", "epochs_planned"]
    assert step_changes("mixed_precision", "no_bias_decay", "bag_of_tricks", "cifar") == ["precision"]
    args = ["+step=gelu", *TINY, "train.epochs=1", "train.max_steps_per_epoch=1", "eval.robustness=false",
            "model.kernel_size=3"]
    assert run_here(*args, runs_root=tmp_path, capsys=capsys)[0] == 0
    assert summary(tmp_path / RUN.format(step="gelu"))["changes"] == ["activation"]


def test_wandb_online_without_an_account_is_one_line(tmp_path, capsys, monkeypatch):
    """Its check (wandb.api.api_key) printed wandb's deprecation warning before the error line."""
    pytest.importorskip("wandb")
    for name in ("WANDB_API_KEY", "WANDB_MODE", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: no login
    code, _, err = run_here("+step=gelu", *TINY, "train.epochs=1", "logger=wandb", "logger.mode=online",
                            runs_root=tmp_path / "runs", capsys=capsys)
    assert (code, err) == (2, "error: logger.mode=online needs `wandb login` or WANDB_API_KEY; logger.mode=offline "
                              "needs no account\n")


def test_a_runs_root_whose_interpolation_fails_is_one_line_in_a_sweeps_job(tmp_path, capsys, monkeypatch):
    """validate read a plain value's interpolation outside its try: an InterpolationKeyError traceback."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_here("+step=gelu", *TINY, runs_root="${oops}", capsys=capsys, precheck=False)
    assert (code, err) == (2, "error: runs_root: Interpolation key 'oops' not found\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["summary.json", "metrics.jsonl", "config.yaml", "last.pt", ".lock",
                                  "../../roadmap.json"])
def test_a_folder_where_the_run_writes_a_file_is_one_line(tmp_path, capsys, name):
    """An IsADirectoryError traceback (for last.pt: 'corrupt or unreadable', which it is not; for the group's
    roadmap.json after the run's files were written)."""
    run_dir = tmp_path / RUN.format(step="gelu")
    folder = run_dir / name
    folder.mkdir(parents=True)
    code, _, err = run_here("+step=gelu", *TINY, runs_root=tmp_path, capsys=capsys)
    assert (code, err) == (2, f"error: {folder.resolve()}: a folder where the run writes a file; move it away\n")
    assert sorted(p.name for p in run_dir.iterdir()) == ([] if name.startswith("..") else [name])
