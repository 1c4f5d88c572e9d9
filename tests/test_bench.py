"""The benchmark on a tiny setting: a well-formed CSV and Markdown table, a row per step and the references."""

import subprocess

import pandas as pd
import pytest

from helpers import ROOT, table_rows


def test_bench_tiny_setting_writes_csv_and_markdown(tmp_path, capsys):
    from roadmap.bench import cli as bench

    steps = ["resnet50", "widen", "separate_downsampling"]
    assert bench.main(["--batch", "2", "--resolution", "64", "--iters", "1", "--warmup", "1", "--cifar-batch", "2",
                       "--rounds", "1", "--peak-tflops", "1", "--steps", *steps, "--trainer-steps", "4",
                       "--out", str(tmp_path)]) == 0  # `python -m roadmap.bench ...`, in this process
    assert capsys.readouterr().out.splitlines()[-2:] == [str(tmp_path / "bench_cpu_convnext_t.csv"),
                                                         str(tmp_path / "bench_cpu_convnext_t.md")]  # what it wrote
    df = pd.read_csv(tmp_path / "bench_cpu_convnext_t.csv")
    assert list(df["step"]) == steps + ["torchvision resnet50", "torchvision convnext_tiny"]
    assert (df["train_img_s"] > 0).all() and (df["infer_img_s"] > 0).all()
    # each network's training step in a process of its own: Python and torch (hundreds of MB), then at least weights,
    # grads and AdamW's two moments on top
    assert (df["imports_rss_mb"] > 100).all()
    assert (df["peak_rss_mb"] > df["imports_rss_mb"] + 3 * df["params"] * 4 / 2**20).all(), df
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
    table = table_rows(md, "step")
    assert len(table) == len(steps) + 2
    assert [float(r["peak RSS MB"]) for r in table] == pytest.approx(list(df["peak_rss_mb"]), abs=0.5)
    assert "Peak RSS MB: the peak resident memory of a process of its own that builds the network and runs 2 of its " \
           "training steps" in md
    assert "Trainer end-to-end on the embedded scale (separate_downsampling, random data of that shape, 4 steps)" in md
    assert "cifar-scale sweep of the 3 measured steps (of 17) (3 steps, 100 epochs" in md
    # with a given peak (1 TFLOP/s) the utilisation is 6 x GMACs at 64px x img/s / peak
    r = rows.loc["separate_downsampling"]
    assert r["mfu"] == pytest.approx(6 * r["gmacs"] * (64 / 224) ** 2 * 1e9 * r["train_img_s"] / 1e12)
    assert "Model FLOP utilisation against a dense bf16 peak of 1 TFLOP/s: " in md


def test_a_networks_peak_rss_is_its_own_process_not_the_callers():
    """The table's memory column was an estimate (weights, grads, AdamW state, saved activations: 1788 MB for
    inverted_bottleneck, whose step measured 2.89 GB as a process). Now a fresh process runs the step and reports its
    own peak resident memory, and not the caller's: ru_maxrss carries over across exec, so a child of a process
    holding 400 MB more reported 400 MB more."""
    import functools

    from roadmap.bench.memory import peak_rss_bytes, step_rss
    from roadmap.nets.model import ModelConfig, RoadmapNet

    tiny = dict(batch=2, resolution=32, num_classes=10, device="cpu", precision="fp32", channels_last=False)
    build = functools.partial(RoadmapNet, ModelConfig(num_classes=10, width_multiplier=0.125))
    alone = step_rss(build, **tiny)
    assert 100 < alone["imports_rss_mb"] <= alone["peak_rss_mb"] < 2000, alone  # torch imported; a tiny network
    assert alone["rss_process_s"] > 0
    held = b"\x01" * (400 * 2**20)  # resident in this process while the next one runs
    assert peak_rss_bytes() > 400 * 2**20
    beside = step_rss(build, **tiny)
    del held
    assert beside["peak_rss_mb"] == pytest.approx(alone["peak_rss_mb"], abs=100), (alone, beside)


def test_a_failing_memory_measurement_says_why_in_one_line():
    import functools

    from roadmap.bench.memory import step_rss

    with pytest.raises(RuntimeError, match=r"^the memory measurement's process exited 1: ValueError: invalid literal"):
        step_rss(functools.partial(int, "x"), batch=2, resolution=32, num_classes=10, device="cpu", precision="fp32",
                 channels_last=False)  # a network that cannot be built


def test_the_memory_column_says_which_memory_it_is(tmp_path):
    """On CUDA the column stays the GPU memory the timed steps allocated, named so; on a CPU the peak resident memory
    of the step's own process."""
    from roadmap.bench.networks import write

    row = {"step": "resnet50", "model": "roadmap", "compile": False, "params": 25_557_032, "gmacs": 4.089,
           "train_step_ms": 100.0, "train_img_s": 80.0, "infer_img_s": 300.0, "cifar_img_s": 900.0}
    meta = {"device": "NVIDIA H100 80GB HBM3", "torch": "2", "torchvision": "0", "date": "2026-12-06",
            "roadmap": "convnext_t", "steps": 17, "batch": 8, "resolution": 224, "precision": "bf16",
            "channels_last": True, "compile": "off", "cifar_batch": 64, "cifar_sweep_hours": 1.0,
            "trainer_overhead": None, "peak_tflops": None}
    gpu = {"meta": {**meta, "memory": "peak_gpu_mb", "rss_steps": None, "imports_rss_mb": None},
           "rows": [{**row, "peak_gpu_mb": 1234.4}]}
    md = write(gpu, tmp_path / "gpu")[1].read_text()
    assert table_rows(md, "step")[0]["peak GPU MB"] == "1234" and "peak RSS" not in md
    assert "Peak GPU MB: torch.cuda.max_memory_allocated over the timed training steps." in md
    cpu = {"meta": {**meta, "device": "AMD EPYC CPU (2 threads)", "memory": "peak_rss_mb", "rss_steps": 2,
                    "imports_rss_mb": 671.4},
           "rows": [{**row, "peak_rss_mb": 2750.6, "imports_rss_mb": 671.4},
                    {**row, "step": "separate_downsampling", "compile": True}]}  # compiled: not measured
    md = write(cpu, tmp_path / "cpu")[1].read_text()
    assert [r["peak RSS MB"] for r in table_rows(md, "step")] == ["2751", ""]
    assert "Python and torch's imports included (671 MB of it)" in md


def test_measuring_a_network_frees_it():
    """make bench peaked at 19 GB: activation_bytes's pack hook kept each saved tensor itself in the graph that made
    it, a cycle through C++ that gc never frees, so every network measured stayed in memory with its activations."""
    import gc
    import weakref

    import torch

    from roadmap.bench.throughput import measure
    from roadmap.nets.model import ModelConfig, RoadmapNet

    model = RoadmapNet(ModelConfig(num_classes=10, width_multiplier=0.125))
    measure(model, batch=2, resolution=32, num_classes=10, device=torch.device("cpu"), precision="fp32",
            channels_last=False, compile_model=False, warmup=0, iters=1)
    alive = weakref.ref(next(model.parameters()))  # the module went; its weights and activations stayed
    del model
    gc.collect()
    assert alive() is None


def test_gpu_check_stops_at_once_without_a_gpu(tmp_path, capsys):
    """`make gpu-check` (and the module behind it) on a machine without CUDA: one line, exit 2, nothing written."""
    from roadmap.gpu import check as gpu_check

    p = subprocess.run(["make", "-s", "gpu-check", f"GPU_OUT={tmp_path / 'out'}"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 2, p.stderr
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 2  # `python -m roadmap.gpu.check`, in this process
    for err in (p.stderr, capsys.readouterr().err):
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "gpu-check needs a CUDA GPU" in lines[0], err
    assert not (tmp_path / "out").exists()


def test_profile_mode_on_cpu_writes_op_tables_and_busy_fraction(tmp_path):
    """`--profile` on a tiny setting: a CSV per step of ops by self CPU time, shares of the step's wall time that
    add up to the busy fraction, the convolutions among the top ops, and a summary with every phase."""
    from roadmap.bench.cli import main
    from roadmap.bench.profiling import COLUMNS

    steps = ["resnet50", "separate_downsampling"]
    assert main(["--profile", "--scale", "embedded", "--batch", "4", "--steps", *steps, "--warmup", "1", "--iters",
                 "2", "--out", str(tmp_path)]) == 0
    summary = pd.read_csv(tmp_path / "profile_cpu_embedded.csv").set_index("step")
    assert list(summary.index) == steps
    for step in steps:
        df = pd.read_csv(tmp_path / f"profile_cpu_embedded_{step}.csv")
        assert tuple(df.columns) == COLUMNS
        assert df["share"].between(0, 1).all() and df["share"].sum() <= 1 + 1e-6
        assert (df["ms_per_step"] >= 0).all() and (df["calls_per_step"] > 0).all()
        assert set(df["phase"]) >= {"forward", "backward", "optimizer"}
        assert any("convolution" in name for name in df["name"].head(8)), df.head(8)
        busy = summary.loc[step, "busy"]
        assert 0 < busy <= 1
        assert df["share"].sum() == pytest.approx(busy, rel=1e-3)  # on CPU the rows are all the busy time
        assert summary.loc[step, "forward_ms"] > 0 and summary.loc[step, "backward_ms"] > 0
    md = (tmp_path / "profile_cpu_embedded.md").read_text()
    assert md.startswith("# Profile of the training step on ") and "CPU" in md.splitlines()[0]
    assert "## separate_downsampling: top " in md
    assert table_rows(md.split("## separate_downsampling: top ")[1], "#")[0]["#"] == "1"


def test_profile_summary_of_cuda_events_attributes_kernels_to_ops_and_phases():
    """The CUDA side of the profile, on made-up profiler events: kernel time goes to the op that launched it, in the
    phase its host op ran in (backward ops run on autograd's thread), kernels nobody claims stay as `other`, and the
    busy time is the union of the device's intervals (two overlapping kernels count once)."""
    from types import SimpleNamespace as NS

    from torch.autograd import DeviceType

    from roadmap.bench.profiling import summarize

    def ev(name, start, end, kernels=(), parent=None, thread=1, user=False, device=DeviceType.CPU):
        return NS(name=name, device_type=device, is_async=False, time_range=NS(start=start, end=end), thread=thread,
                  kernels=[NS(name=k, duration=d) for k, d in kernels], cpu_parent=parent, is_user_annotation=user,
                  self_cpu_time_total=end - start)

    conv = ev("aten::conv2d", 0, 100)
    optim = ev("Optimizer.step#AdamW.step", 810, 990, user=True)
    events = [ev("roadmap::forward", 0, 300, user=True), ev("roadmap::backward", 300, 800, user=True),
              ev("roadmap::optimizer", 800, 1000, user=True), conv,
              ev("aten::cudnn_convolution", 10, 90, [("conv_fwd", 200)], parent=conv),
              ev("aten::convolution_backward", 400, 450, [("dgrad", 300), ("wgrad", 100)], thread=2), optim,
              ev("aten::_fused_adamw_", 820, 980, [("adam", 50)], parent=optim),
              ev("conv_fwd", 100, 300, device=DeviceType.CUDA), ev("dgrad", 400, 700, device=DeviceType.CUDA),
              ev("wgrad", 650, 750, device=DeviceType.CUDA), ev("adam", 900, 950, device=DeviceType.CUDA),
              ev("triton_fused", 960, 990, device=DeviceType.CUDA)]
    rows, busy_s = summarize(events, cuda=True, wall_s=1000e-6, steps=1)
    got = {(r["phase"], r["name"]): (r["op"], r["ms_per_step"], r["share"]) for r in rows}
    assert got == {("forward", "conv_fwd"): ("aten::conv2d", 0.2, 0.2),
                   ("backward", "dgrad"): ("aten::convolution_backward", 0.3, 0.3),
                   ("backward", "wgrad"): ("aten::convolution_backward", 0.1, 0.1),
                   ("optimizer", "adam"): ("Optimizer.step#AdamW.step", 0.05, 0.05),
                   ("other", "triton_fused"): ("", 0.03, 0.03)}
    assert [r["name"] for r in rows][:2] == ["dgrad", "conv_fwd"]
    assert busy_s == pytest.approx(630e-6)  # 200 + 350 (dgrad and wgrad overlap by 50) + 50 + 30


def test_depthwise_wrapper_changes_only_the_depthwise_convs_layout_and_precision():
    import copy

    import torch

    from roadmap.nets.model import ModelConfig, RoadmapNet
    from roadmap.bench.variants import DepthwiseAs, wrap_depthwise

    torch.manual_seed(0)
    cfg = ModelConfig(depths=(1, 1, 2, 1), width=96, stem="patchify", spatial_conv="depthwise", block="inverted",
                      conv_position="first", kernel_size=7, activation="gelu", activations="one", norms="one",
                      norm="layer", downsampling="separate", layer_scale=1e-6, num_classes=10, width_multiplier=0.125)
    model = RoadmapNet(cfg).to(memory_format=torch.channels_last).eval()
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    nchw, fp32 = copy.deepcopy(model), copy.deepcopy(model)
    assert wrap_depthwise(nchw, nchw=True, low=None) == 5 and wrap_depthwise(fp32, nchw=True, low=torch.bfloat16) == 5
    wrapped = [m for m in fp32.modules() if isinstance(m, DepthwiseAs)]
    assert len(wrapped) == 5 and all(m.conv.groups == m.conv.in_channels for m in wrapped)
    seen = []
    for m in (next(m for m in nchw.modules() if isinstance(m, DepthwiseAs)), wrapped[0]):
        m.conv.register_forward_hook(lambda m, i, o: seen.append((i[0].is_contiguous(), i[0].dtype)))
        m.register_forward_hook(lambda m, i, o: seen.append(
            (o.is_contiguous(memory_format=torch.channels_last), o.dtype)))
    with torch.no_grad():
        torch.testing.assert_close(nchw(x), model(x))  # fp32 throughout: the same network
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.testing.assert_close(fp32(x), model(x), atol=0.05, rtol=0.05)
    # the conv saw NCHW input (in fp32 under bf16 autocast); the block got channels_last back (in the autocast dtype)
    assert seen == [(True, torch.float32), (True, torch.float32), (True, torch.float32), (True, torch.bfloat16)]


def test_variants_mode_on_cpu_labels_every_row(tmp_path):
    """`--variants` on a tiny setting: a row per step and variant; the eager ones measured, the ones that do not exist
    on a CPU skipped with the reason, the compiled ones not measured when the budget cannot cover a compile; with no
    budget, nothing is measured and every row says so."""
    from roadmap.bench.cli import main
    from roadmap.bench.variants import COLUMNS, VARIANTS

    steps = ["resnet50", "separate_downsampling"]
    args = ["--variants", "--scale", "embedded", "--batch", "4", "--steps", *steps, "--warmup", "1", "--iters", "1",
            "--compile-estimate", "100000"]
    assert main([*args, "--budget", "120", "--out", str(tmp_path / "a")]) == 0
    df = pd.read_csv(tmp_path / "a" / "variants_cpu.csv", keep_default_na=False)
    assert tuple(df.columns) == COLUMNS
    assert list(zip(df["step"], df["variant"])) == [(s, v.name) for s in steps for v in VARIANTS]
    assert (df["scale"] == "embedded").all() and (df["resolution"] == 32).all() and (df["batch"] == 4).all()
    rows = df.set_index(["step", "variant"])
    for step in steps:
        assert rows.loc[(step, "eager"), "status"] == "measured"
        assert float(rows.loc[(step, "eager"), "ratio_to_eager"]) == 1.0
        assert rows.loc[(step, "cudnn_benchmark"), "status"].startswith("skipped: no cuDNN on cpu")
        assert rows.loc[(step, "compile_cudagraphs"), "status"] == "skipped: CUDA graphs need a CUDA device"
        assert rows.loc[(step, "compile"), "status"].startswith("not measured: ")
        assert rows.loc[(step, "dw_fp32"), "status"].startswith("skipped: ")
    assert rows.loc[("resnet50", "dw_nchw"), "status"] == "skipped: no depthwise conv in this network"
    # the embedded scale trains channels_last on CPUs, so the NCHW depthwise variant exists for ConvNeXt
    assert rows.loc[("separate_downsampling", "dw_nchw"), "status"] == "measured"
    assert rows.loc[("separate_downsampling", "dw_nchw"), "note"] == "18 depthwise convs wrapped"
    measured = df[df["status"] == "measured"]
    assert (measured["ms_per_step"].astype(float) > 0).all() and (measured["img_s"].astype(float) > 0).all()
    assert df["status"].str.match(r"^(measured|skipped: |not measured: )").all()
    md = (tmp_path / "a" / "variants_cpu.md").read_text()
    assert md.startswith("# Speed variants of the training step on ") and "CPU" in md.splitlines()[0]
    table = table_rows(md, "step")
    assert len(table) == len(df) and "not measured: " in md

    assert main([*args, "--budget", "0", "--out", str(tmp_path / "b")]) == 0
    none = pd.read_csv(tmp_path / "b" / "variants_cpu.csv", keep_default_na=False)
    assert len(none) == len(df) and (none["ms_per_step"] == "").all()
    skipped = df["status"].str.startswith("skipped: ") & (df["variant"] != "compile_best")  # (it depends on timings)
    assert (none["status"][skipped] == df["status"][skipped]).all()  # what does not exist here does not depend on time
    assert none["status"][~skipped].str.startswith("not measured: ").all()
    assert (none["status"] == "not measured: the budget (0 s) was spent").sum() >= (df["status"] == "measured").sum()


def test_variants_plan_on_a_gpu():
    """What `--variants` would run on a CUDA device (decided without one): every variant exists for the depthwise
    networks in bf16 + channels_last, only the depthwise ones are skipped for ResNet-50; eager rows come first, then
    the compiled ones, ConvNeXt-T first and CUDA graphs before the default mode, compile_best last; compile_best
    compiles the fastest eager variant with CUDA graphs."""
    import torch

    from roadmap.bench.trainer_step import Setting
    from roadmap.nets.model import ModelConfig
    from roadmap.bench.variants import VARIANTS, Row, _effective, _priority, skip_reason

    steps, scales, ends = ["resnet50", "separate_downsampling", "kernel_9"], ["cifar", "imagenet"], \
        ["separate_downsampling", "resnet50"]
    settings = {(st, sc): Setting(st, sc, ModelConfig(spatial_conv="dense" if st == "resnet50" else "depthwise"),
                                  None, 512, torch.device("cuda"), "bf16", True, 512, 32, 100)
                for sc in scales for st in steps}
    rows = [Row(settings[(st, sc)], v) for sc in scales for st in steps for v in VARIANTS]
    skipped = {(r.setting.step, r.variant.name) for r in rows if skip_reason(r.variant, r.setting)}
    assert skipped == {("resnet50", v) for v in ("dw_nchw", "dw_fp32", "dw_nchw_fp32")}
    order = sorted(rows, key=lambda r: _priority(r, steps, ends, scales))
    compiled = [i for i, r in enumerate(order) if r.variant.compile or r.variant.on_best]
    assert compiled == list(range(len(order) - len(compiled), len(order)))  # eager variants all come first
    first = [(order[i].setting.step, order[i].setting.scale, order[i].variant.name) for i in compiled[:6]]
    assert first == [("separate_downsampling", "cifar", "compile_cudagraphs"), ("separate_downsampling", "cifar",
                                                                                 "compile"),
                     ("separate_downsampling", "imagenet", "compile_cudagraphs"),
                     ("separate_downsampling", "imagenet", "compile"), ("resnet50", "cifar", "compile_cudagraphs"),
                     ("resnet50", "cifar", "compile")]
    assert all(order[i].variant.on_best for i in compiled[-len(steps) * len(scales):])
    best = next(r for r in rows if r.variant.on_best and r.setting is settings[("kernel_9", "imagenet")])
    assert _effective(best, rows).startswith("not measured")  # no eager rows measured yet
    for r in rows:
        if r.setting is best.setting and r.variant.name in ("eager", "dw_nchw", "dw_fp32"):
            r.ms = {"eager": 150.0, "dw_nchw": 40.0, "dw_fp32": 160.0}[r.variant.name]
    v = _effective(best, rows)
    assert (v.dw_nchw, v.dw_fp32, v.compile, v.name) == (True, False, "reduce-overhead", "compile_best")


STEPS = ("resnet50_classic, resnet50, stage_ratio, patchify_stem, depthwise_conv, widen, inverted_bottleneck, "
         "move_up_dwconv, kernel_5, kernel_7, kernel_9, kernel_11, gelu, fewer_activations, fewer_norms, layer_norm, "
         "separate_downsampling")
BAD_BENCH = [
    (["--steps", "gelu", "nope"], f"--steps nope: not a step of roadmap convnext_t; its steps: {STEPS}"),
    (["--roadmap", "nope"], "roadmap='nope': no roadmap/nope.yaml in conf/ or the config dirs; roadmaps: "
                            "bag_of_tricks, convnext_b, convnext_t"),
    (["--device", "tpu"], "--device tpu: one of cpu, cuda, cuda:<index>, mps"),
    (["--device", "cpu:1"], "--device cpu:1: torch sees 1 CPU device here"),
    (["--loader", "--device", "tpu"], "--device tpu: one of cpu, cuda, cuda:<index>, mps"),
    (["--iters", "0"], "--iters 0: must be at least 1"),
    (["--batch", "1"], "--batch 1: must be at least 2 (BatchNorm trains on 2 images or more)"),
    (["--resolution", "8"], "--resolution 8: must be at least 32 (the networks downsample 32x)"),
    (["--variants", "--budget", "-1"], "--budget -1.0: must be at least 0 (0: plan only)"),
    (["--peak-tflops", "0"], "--peak-tflops 0.0: must be a number > 0"),
    (["--profile", "--scale", "huge"], "--scale huge: one of cifar, embedded, imagenet, imagenette"),
    (["--variants", "--only-variants", "warp"], "--only-variants warp: one of eager, cudnn_benchmark, dw_nchw, "
                                                "dw_fp32, dw_nchw_fp32, other_layout, compile, compile_cudagraphs, "
                                                "compile_best"),
    (["--iters", "x"], "argument --iters: invalid int value: 'x' (see python -m roadmap.bench --help)"),
    (["--bogus"], "unrecognized arguments: --bogus (see python -m roadmap.bench --help)"),
    (["--steps"], "argument --steps: expected at least one argument (see python -m roadmap.bench --help)"),
]
if not __import__("torch").cuda.is_available():
    BAD_BENCH.append((["--device", "cuda"], "--device cuda: torch sees no CUDA devices here"))


def exit_code(main, argv) -> int:
    """What `python -m <module> <argv>` exits with, in this process (argparse's errors exit; main returns)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("args, message", BAD_BENCH, ids=[" ".join(a) for a, _ in BAD_BENCH])
def test_bad_bench_arguments_are_one_line_and_write_nothing(args, message, tmp_path, capsys):
    """--steps nope exited 0 and wrote a 1-byte CSV over the committed one; --roadmap nope and --device cuda on a
    CPU machine were tracebacks."""
    from roadmap.bench.cli import main

    assert exit_code(main, [*args, "--out", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"error: {message}\n")
    assert list(tmp_path.iterdir()) == []


def test_a_bench_out_that_is_a_file_is_one_line(tmp_path, capsys):
    from roadmap.bench.cli import main

    (tmp_path / "file").write_text("x")
    assert exit_code(main, ["--steps", "gelu", "--out", str(tmp_path / "file" / "out")]) == 2
    assert capsys.readouterr().err == f"error: --out {tmp_path / 'file' / 'out'}: {tmp_path / 'file'} is a file, not " \
                                      f"a folder\n"


def test_an_empty_bench_out_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """--out '' (an unset shell variable) wrote the tables into the current folder."""
    from roadmap.bench.cli import main

    monkeypatch.chdir(tmp_path)
    assert exit_code(main, ["--steps", "gelu", "--out", ""]) == 2
    assert capsys.readouterr().err == "error: argument --out: an empty path (see python -m roadmap.bench --help)\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unrecognized arguments: --bogus (see python -m roadmap.bench.complexity --help)"),
    (["scale=cifar"], "scale=cifar: the one setting is roadmap=NAME (see python -m roadmap.bench.complexity --help)"),
    (["roadmap=nope"], "roadmap='nope': no roadmap/nope.yaml in conf/ or the config dirs; roadmaps: bag_of_tricks, "
                       "convnext_b, convnext_t"),
    (["convnext_t", "extra"], "unrecognized arguments: extra (see python -m roadmap.bench.complexity --help)"),
])
def test_bad_complexity_arguments_are_one_line(args, message, capsys):
    from roadmap.bench.complexity import main

    assert exit_code(main, args) == 2
    assert capsys.readouterr() == ("", f"error: {message}\n")


def test_the_loader_benchmark_module_points_to_its_command_line():
    """`python -m roadmap.bench.loaders --nope` exited 0 and did nothing."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "roadmap.bench.loaders", "--nope"], capture_output=True, text=True)
    assert (p.returncode, p.stdout, p.stderr) == (
        2, "", "error: the loader benchmark runs as `python -m roadmap.bench --loader`\n")
