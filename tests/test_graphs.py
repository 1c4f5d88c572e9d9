"""The training step (eager or one CUDA graph), the capturable optimizer's checkpoints, and the side-stream
prefetch of device batches. The CPU tests run everywhere; the `gpu` ones on a CUDA machine (`make gpu-check`)."""

from contextlib import nullcontext

import pytest
import torch

from roadmap.data import datasets as data_lib
from roadmap.train import step as graphs
from roadmap.train import recipe as recipe_lib
from roadmap.config import compose
from roadmap.errors import ConfigError
from roadmap.config import validate
from roadmap.train.preflight import cuda_graphs
from roadmap.train.runtime import Runtime

from helpers import TINY, metrics, run, summary

RUN = "embedded/convnext_t/{step}/seed0"


def _recipe(**changes):
    return validate(compose(["+step=gelu", "scale=cifar", *[f"recipe.{k}={v}" for k, v in changes.items()]])).recipe


def test_cuda_graphs_true_where_the_step_cannot_be_captured_says_why():
    cpu, gpu = Runtime(torch.device("cpu")), Runtime(torch.device("cuda", 0))
    s = validate(compose(["+step=gelu", *TINY, "train.cuda_graphs=true"]))
    with pytest.raises(ConfigError, match=r"^train.cuda_graphs=true: the device is not CUDA$"):
        cuda_graphs(s, cpu, "fp32")
    with pytest.raises(ConfigError, match=r"^train.cuda_graphs=true: fp16 loss scaling syncs with the host"):
        cuda_graphs(s, gpu, "fp16")
    sgd = validate(compose(["+step=resnet50_classic", *TINY, "train.cuda_graphs=true"]))
    with pytest.raises(ConfigError, match=r"only AdamW is captured, not recipe.optimizer=sgd"):
        cuda_graphs(sgd, gpu, "bf16")
    folder = validate(compose(["+step=gelu", "scale=imagenette", "data.root=/x", "train.cuda_graphs=true"]))
    with pytest.raises(ConfigError, match=r"data.kind=folder batches are made by workers"):
        cuda_graphs(folder, gpu, "bf16")
    assert cuda_graphs(s, gpu, "bf16") is True
    auto = validate(compose(["+step=gelu", *TINY]))
    assert cuda_graphs(auto, cpu, "fp32") is False and cuda_graphs(auto, gpu, "bf16") is False  # the default, off


def test_cuda_graphs_prefer_trains_a_step_that_cannot_be_captured_eager_with_one_line(capsys):
    """What a GPU sweep asks of every step: the SGD step of the roadmap's start trains eager, and says why."""
    gpu = Runtime(torch.device("cuda", 0))
    sgd = validate(compose(["+step=resnet50_classic", *TINY, "train.cuda_graphs=prefer"]))
    assert cuda_graphs(sgd, gpu, "bf16") is False
    assert capsys.readouterr().out == ("train.cuda_graphs=prefer: only AdamW is captured, not recipe.optimizer=sgd; "
                                       "this run trains eager\n")
    adamw = validate(compose(["+step=gelu", *TINY, "train.cuda_graphs=prefer"]))
    assert cuda_graphs(adamw, gpu, "bf16") is True and capsys.readouterr().out == ""
    assert cuda_graphs(sgd, Runtime(torch.device("cpu")), "fp32") is False  # the step's reason comes first
    assert "not recipe.optimizer=sgd" in capsys.readouterr().out


def test_eager_step_is_the_trainers_optimizer_step():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 4))
    twin = torch.nn.Sequential(torch.nn.Linear(6, 4))
    twin.load_state_dict(net.state_dict())
    x, y = torch.randn(8, 6), torch.randint(0, 4, (8,))
    opts = [torch.optim.AdamW(m.parameters(), lr=0.1) for m in (net, twin)]
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    step = graphs.eager_step(net, torch.nn.CrossEntropyLoss(), opts[0], scaler, nullcontext(), 0.5,
                             list(net.parameters()))
    for _ in range(3):
        loss = step(x, y)
        opts[1].zero_grad()
        expected = torch.nn.functional.cross_entropy(twin(x), y)
        expected.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.5)
        opts[1].step()
        assert loss.item() == pytest.approx(expected.item(), rel=1e-6) and not loss.requires_grad
    assert torch.equal(net[0].weight, twin[0].weight)


@pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)` before")
def test_optimizer_state_moves_between_eager_and_capturable_optimizers():
    """A checkpoint of an eager run resumed by a graphed one keeps the graph's lr tensor (updated in place by the
    schedule) and its capturable flag; the reverse gives a float lr again."""
    recipe = _recipe()
    net = torch.nn.Linear(4, 2)
    eager = recipe_lib.optimizer(net, recipe, 512)
    first = recipe_lib.schedule(eager, recipe, 100)
    net(torch.randn(3, 4)).sum().backward()
    eager.step()
    first.step()
    saved = eager.state_dict()
    groups = [{"params": [net.weight], "weight_decay": 0.05}, {"params": [net.bias], "weight_decay": 0.0}]
    graphed = torch.optim.AdamW(groups, lr=torch.tensor(0.0), capturable=True)  # as on CUDA, but on the CPU
    lr = graphed.param_groups[0]["lr"]
    recipe_lib.load_optimizer_state(graphed, saved)
    group = graphed.param_groups[0]
    assert group["lr"] is lr and lr.item() == pytest.approx(eager.param_groups[0]["lr"], rel=1e-6)
    assert group["capturable"] is True and group["fused"] is None
    assert graphed.state[net.weight]["step"].dtype == torch.float32
    assert torch.equal(graphed.state[net.weight]["exp_avg"], eager.state[net.weight]["exp_avg"])
    sched = recipe_lib.schedule(graphed, recipe, 100)
    sched.step()
    assert group["lr"] is lr and lr.item() == pytest.approx(sched.get_last_lr()[0])
    back = torch.optim.AdamW([{"params": [net.weight]}, {"params": [net.bias]}], lr=1.0)
    recipe_lib.load_optimizer_state(back, graphed.state_dict())
    assert isinstance(back.param_groups[0]["lr"], float) and back.param_groups[0]["capturable"] is False


def test_prefetched_is_the_loader_itself_off_cuda():
    split = data_lib.TensorSplit(torch.randint(0, 255, (40, 1, 8, 8), dtype=torch.uint8), torch.arange(40) % 4)
    norm = torch.nn.Identity()
    loader = data_lib.TensorLoader(split, 8, train=True, seed=3, norm=norm)
    wrapped = data_lib.Prefetched(data_lib.TensorLoader(split, 8, train=True, seed=3, norm=norm), "cpu")
    assert len(wrapped) == 5
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        wrapped.set_epoch(epoch)
        pairs = list(zip(loader, wrapped, strict=True))
        assert len(pairs) == 5 and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)


class _FakeStream:
    """What Prefetched and GraphedStep ask of a CUDA stream, recorded: which streams each one waited for."""
    made = []

    def __init__(self, *args):
        self.waited = []
        _FakeStream.made.append(self)

    def wait_stream(self, other):
        self.waited.append(other)


class _Batch(tuple):
    """A batch of CPU tensors that accepts record_stream (the fake main stream)."""


def _fake_cuda(monkeypatch):
    _FakeStream.made = []
    main = _FakeStream()
    monkeypatch.setattr(torch.cuda, "Stream", _FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: main)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: nullcontext())
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda self, s: None)
    return main


def test_prefetch_waits_for_the_main_stream_once_an_epoch_and_each_step_only_for_its_batch(monkeypatch):
    """The side stream that makes batch k+1 never waits for step k (it would serialise the two); the main stream
    waits for each batch; one side stream for every epoch; the batches are the loader's."""
    split = data_lib.TensorSplit(torch.randint(0, 255, (40, 1, 8, 8), dtype=torch.uint8), torch.arange(40) % 4)
    plain = data_lib.TensorLoader(split, 8, train=True, seed=3, norm=torch.nn.Identity())
    main = _fake_cuda(monkeypatch)
    ahead = data_lib.Prefetched(data_lib.TensorLoader(split, 8, train=True, seed=3, norm=torch.nn.Identity()),
                                "cuda")
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        ahead.set_epoch(epoch)
        pairs = list(zip(plain, ahead, strict=True))
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)
    side = [s for s in _FakeStream.made if s is not main]
    assert len(side) == 1 and side[0].waited == [main, main]  # once an epoch
    assert main.waited == [side[0]] * 10  # 5 batches an epoch


def test_graphed_step_warms_up_on_one_side_stream(monkeypatch):
    main = _fake_cuda(monkeypatch)
    steps = []
    graphed = graphs.GraphedStep(lambda x, y: steps.append(x) or x.sum(), opt=None, warmup=3)
    for i in range(3):
        graphed(torch.full((2,), float(i)), torch.zeros(2))
    side = [s for s in _FakeStream.made if s is not main]
    assert len(steps) == 3 and len(side) == 1 and side[0].waited == [main] * 3 and main.waited == side * 3


def test_the_masked_per_image_ops_give_the_grouped_ops_pixels():
    """On CUDA the per-image RandAugment ops run on the whole batch and each image takes its own op's result (no
    host sync); on the CPU they run per group. The same pixels, for every (op, sign) code."""
    from roadmap.data import augment

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (96, 3, 16, 16), dtype=torch.uint8, generator=g)
    values = augment._tables(3, 16, 16, 9, 31, torch.device("cpu"))[0]
    ops = torch.randint(0, len(augment._OPS), (96,), generator=g)
    code = ops * 2 + ((torch.rand(96, generator=g) < 0.5) & augment._SIGNED[ops]).long()  # as rand_augment draws
    code = torch.where(torch.tensor([augment._OPS[int(c) // 2] in augment._GROUPED for c in code]), code, 0)
    assert len(set(code.tolist())) >= 6  # every grouped op and Sharpness's two signs, and unchanged images
    masked = augment._grouped_ops(x, code, values, masked=True)
    assert torch.equal(masked, augment._grouped_ops(x, code, values, masked=False))
    assert torch.equal(masked[code == 0], x[code == 0]) and not torch.equal(masked, x)


def test_normalize_is_torchvisions_to_dtype_and_normalize():
    from torchvision.transforms import v2

    from roadmap.data.augment import Normalize

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    reference = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
    ours = Normalize(mean, std)
    assert torch.equal(ours(x), reference(x)) and torch.equal(ours(x[0]), reference(x[0]))


@pytest.mark.gpu
def test_the_batch_augmentation_never_syncs_with_the_host():
    split = data_lib.TensorSplit(torch.randint(0, 255, (256, 3, 32, 32), dtype=torch.uint8).cuda(),
                                 (torch.arange(256) % 10).cuda())
    loader = data_lib.TensorLoader(split, 64, train=True, seed=1, augment=data_lib.BatchAugment(
        crop_padding=4, flip=True, randaugment=(2, 9), erasing=0.25, mean=[0.5] * 3, std=[0.25] * 3))
    batches = iter(loader)
    next(batches)  # the epoch's permutation and the constants, made once
    torch.cuda.set_sync_debug_mode("error")
    try:
        x, y = next(batches)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32


@pytest.mark.gpu
def test_prefetched_batches_equal_the_loaders_on_cuda():
    split = data_lib.TensorSplit(torch.randint(0, 255, (256, 3, 32, 32), dtype=torch.uint8).cuda(),
                                 (torch.arange(256) % 10).cuda())
    make = lambda: data_lib.TensorLoader(split, 32, train=True, seed=1, augment=data_lib.BatchAugment(  # noqa: E731
        crop_padding=4, flip=True, randaugment=(2, 9), erasing=0.25, mean=[0.5] * 3, std=[0.25] * 3))
    plain, ahead = make(), data_lib.Prefetched(make(), "cuda")
    got = [(x.clone(), y.clone()) for x, y in ahead]
    want = list(plain)
    assert len(got) == len(want) == 8
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(got, want))


@pytest.mark.gpu
def test_cuda_graph_training_equals_eager_within_bf16_tolerance(tmp_path):
    args = ["+step=separate_downsampling", *TINY, "train.device=cuda", "train.epochs=2", "recipe=modern",
            "recipe.mixup=0.8", "recipe.cutmix=1.0", "recipe.label_smoothing=0.1", "model.drop_path=0.1"]
    run(*args, "train.cuda_graphs=false", runs_root=tmp_path / "eager")
    run(*args, "train.cuda_graphs=true", runs_root=tmp_path / "graph")
    eager, graph = (summary(tmp_path / r / RUN.format(step="separate_downsampling")) for r in ("eager", "graph"))
    assert graph["cuda_graphs"] is True and eager["cuda_graphs"] is False
    a, b = (metrics(tmp_path / r / RUN.format(step="separate_downsampling")) for r in ("eager", "graph"))
    for m, n in zip(a, b, strict=True):
        assert n["train_loss"] == pytest.approx(m["train_loss"], rel=0.05) and n["lr"] == pytest.approx(m["lr"])
        assert abs(n["val_top1"] - m["val_top1"]) <= 10


@pytest.mark.gpu
def test_cuda_graph_run_resumes_as_it_trains_straight(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from helpers import ROOT

    args = ["+step=layer_norm", *TINY, "train.device=cuda", "train.cuda_graphs=true", "train.epochs=3",
            "data.train_size=2048"]
    run(*args, runs_root=tmp_path / "straight")
    run_dir = tmp_path / "killed" / RUN.format(step="layer_norm")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args, f"runs_root={tmp_path / 'killed'}"],
                            cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run_dir / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    done = len(metrics(run_dir))
    resumed = run(*args, runs_root=tmp_path / "killed")
    assert 1 <= done < 3 and f"resumed after epoch {done}/3" in resumed.stdout
    straight = metrics(tmp_path / "straight" / RUN.format(step="layer_norm"))
    for a, b in zip(metrics(run_dir), straight, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3) and a["lr"] == pytest.approx(b["lr"])


def test_gpu_roadmap_without_a_gpu_stops_at_once_in_one_line(capsys):
    import subprocess
    import sys

    from helpers import ROOT
    from roadmap.gpu import roadmap as gpu_roadmap

    assert gpu_roadmap.main([]) == 2  # `python -m roadmap.gpu.roadmap`, in this process
    assert capsys.readouterr() == ("", "error: make gpu-roadmap needs a CUDA GPU, and torch sees none\n")
    m = subprocess.run(["make", "-s", "gpu-roadmap", f"GPU_PY={sys.executable}"], cwd=ROOT, capture_output=True,
                       text=True)
    assert m.returncode == 2 and "make gpu-roadmap needs a CUDA GPU" in m.stderr and m.stdout == ""
