"""The GPU commands rehearsed on the CPU (everything around CUDA: data, calibration, plan, one sweep per seed with
its deadline, the cut, the report, the record, the stages of the check with their limits, the offline kit), so the
first GPU run does not spend its window on a defect a CPU can show."""

import argparse
import gzip
import json
import os
import subprocess
import sys
import time

import pytest

from roadmap import store

from roadmap.gpu import check as gpu_check

from roadmap.gpu import kit as gpu_kit

from roadmap.gpu import roadmap as gpu_roadmap

from roadmap.gpu import processes
from roadmap.data import datasets as data_lib
from roadmap.config import compose, load_roadmap
from roadmap.gpu.roadmap import Cost, faster, plan
from roadmap.config import validate

from helpers import ROOT, table_rows

ORDER = [*[s.name for s in load_roadmap("convnext_t").steps], *[r.name for r in load_roadmap("convnext_t").references]]


def _finished(runs, seed) -> list[str]:
    done = {s["step"] for _, s in store.summaries(runs) if s["seed"] == seed and s["status"] == "done"}
    return [step for step in ORDER if step in done]


def test_gpu_roadmap_rehearsal_plans_every_run_cuts_later_seeds_first_and_reports(tmp_path, capsys):
    """The whole GPU roadmap on the CPU, tiny: its data, calibration, plan, a sweep per seed with the deadline (the
    budget ends during it), the report and the record; then a rerun that keeps the plan, and one that would not."""
    runs, out = tmp_path / "runs", tmp_path / "out"
    code = gpu_roadmap.main(["--rehearse", "--seeds", "2", "--epochs", "1", "--budget", "55", "--runs", str(runs),
                             "--out", str(out)])
    said = capsys.readouterr().out
    assert code == 1, said  # a sweep was cut
    recorded = json.loads((runs / "gpu_roadmap_plan.json").read_text())
    assert recorded["plan"]["runs"] == 2 * len(ORDER) == 36  # 17 steps and Swin-T, each twice
    assert [c["step"] for c in recorded["calibration"]] == ["resnet50", "depthwise_conv", "inverted_bottleneck",
                                                            "kernel_11", "separate_downsampling", "swin_t"]
    assert f"{2 * len(ORDER)} runs x 1 epoch" in said
    assert ("train.cuda_graphs=prefer: only AdamW is captured, not recipe.optimizer=sgd; this run trains eager"
            in said)  # the roadmap's first step, which the GPU sweep used to lose
    done = [(seed, step) for seed in (0, 1) for step in _finished(runs, seed)]
    every = [(seed, step) for seed in (0, 1) for step in ORDER]
    assert 0 < len(done) < len(every) and done == every[:len(done)]  # seed 0's every step before seed 1's first
    assert {s["device"] for _, s in store.summaries(runs) if s["status"] == "done"} == {"cpu"}
    for name in ("roadmap.png", "results.md", "results.csv", "agreement.json"):
        assert (out / name).stat().st_size > 0, name
    record = (out / "gpu_roadmap.md").read_text()
    assert record.startswith("# The convnext_t roadmap on one GPU (a rehearsal on the CPU)")
    results = {r["sweep"]: r["result"] for r in table_rows(record, "sweep")}
    assert "rehearsal on cpu" in record and results["report"] == "ok"
    assert any(results.get(seed, "").startswith(cut) for seed, cut in (
        ("seed 0", "stopped at its limit"), ("seed 1", "stopped at its limit"),
        ("seed 1", "not run: the budget is spent")))  # 55 s: a cut on any VM

    # a rerun: the recorded plan (no calibration); with no time left, nothing trains and the record says so
    code = gpu_roadmap.main(["--rehearse", "--seeds", "2", "--budget", "26", "--runs", str(runs), "--out", str(out)])
    said = capsys.readouterr().out
    assert code == 1 and "the plan recorded in" in said and "calibration:" not in said
    assert [(seed, step) for seed in (0, 1) for step in _finished(runs, seed)] == done
    rerun = {r["sweep"]: r["result"] for r in table_rows((out / "gpu_roadmap.md").read_text(), "sweep")}
    assert rerun["seed 1"] == "not run: the budget is spent"

    code = gpu_roadmap.main(["--rehearse", "--runs", str(runs), "--out", str(out), "--epochs", "3"])
    assert code == 2 and capsys.readouterr().err == (
        f"error: {runs} holds a 1-epoch roadmap, not --epochs 3: finish it without --epochs, or use another --runs\n")


def test_one_sweep_per_seed_each_to_the_deadline(tmp_path, monkeypatch):
    """Seed 0's sweep (every step) comes before seed 1's; each gets what is left before the report's reserve."""
    clock = [1000.0]
    calls = []

    def fake_bounded(name, cmd, limit, echo=False, env=None):
        calls.append((name, cmd[cmd.index("-m") + 1:], round(limit)))
        clock[0] += min(limit, 70.0)  # each sweep would take 70 s
        return {"stage": name, "code": 0 if limit >= 70 else f"stopped at its limit of {limit:.0f} s",
                "seconds": min(limit, 70.0), "output": "", "tail": ""}

    monkeypatch.setattr(gpu_roadmap, "bounded", fake_bounded)
    monkeypatch.setattr(gpu_roadmap.time, "time", lambda: clock[0])
    args = argparse.Namespace(budget=200.0, seeds=3, runs=tmp_path, rehearse=False)
    chosen = gpu_roadmap.Plan(epochs=2, runs=54, graphs=True, seconds_per_epoch=1.0, fixed=1.0, estimate=1.0)
    result = gpu_roadmap.sweep_seeds(args, 1000.0, ["scale=cifar"], chosen)
    reserve = sum(gpu_roadmap.RESERVE["gpu"].values())
    assert [c[0] for c in calls] == ["seed 0", "seed 1"] and [c[2] for c in calls] == [200 - reserve,
                                                                                       200 - reserve - 70]
    assert calls[0][1] == ["+sweep=roadmap", "scale=cifar", "train.epochs=2", "train.cuda_graphs=prefer", "seed=0",
                           f"runs_root={tmp_path}"]
    assert [r["code"] for r in result] == [0, f"stopped at its limit of {200 - reserve - 70:.0f} s",
                                           "not run: the budget is spent"]


def test_a_rehearsal_never_writes_docs_and_missing_data_is_one_line(tmp_path, capsys, monkeypatch):
    assert gpu_roadmap.main(["--rehearse", "--out", str(ROOT / "docs" / "gpu"), "--runs", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: --out {ROOT / 'docs' / 'gpu'}: a rehearsal never writes docs/ (only "
                                       f"a GPU's roadmap goes there)\n")
    monkeypatch.setattr(data_lib, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")  # an offline node without the kit
    assert gpu_roadmap.main(["--rehearse", "--data-root", str(tmp_path / "empty"), "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Fashion-MNIST not found") and len(err.splitlines()) == 1
    assert not (tmp_path / "gpu_roadmap_plan.json").exists()


def test_gpu_check_rehearsal_runs_every_stage(tmp_path, capsys):
    assert gpu_check.main(["--rehearse", "--out", str(tmp_path)]) == 0, capsys.readouterr().out
    report = (tmp_path / "gpu_check.md").read_text()
    assert report.startswith("# GPU check: rehearsal on cpu")
    results = {r["stage"]: r["result"] for r in table_rows(report, "stage")}
    for name in ("gpu tests", "training", "calibration", "benchmark", "loader benchmark", "variants", "profile"):
        assert results[name] == "ok", name
    collected = (tmp_path / "pytest_gpu.txt").read_text()  # every gpu-marked test, not only tests/test_gpu.py
    assert "tests/test_graphs.py::test_cuda_graph_training_equals_eager_within_bf16_tolerance" in collected
    assert "tests/test_gpu.py::test_killed_cuda_run_resumes_to_the_same_result" in collected
    rows = (tmp_path / "training.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:]] == [["resnet50", "done"], ["inverted_bottleneck", "done"],
                                                     ["separate_downsampling", "done"]]
    calibration = table_rows((tmp_path / "gpu_roadmap_calibration.md").read_text(), "step")
    assert ("resnet50", "eager") in [(r["step"], r["step mode"]) for r in calibration]
    for name in ("variants_cpu.md", "profile_cpu_cifar.md", "loader_cpu.md"):
        assert (tmp_path / name).exists(), name


def test_a_failed_training_run_is_a_failed_row_and_no_finished_run_fails_the_stage(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    done = store.run_dir(runs, "cifar", "convnext_t", "roadmap", "resnet50", 0)
    done.mkdir(parents=True)
    store.write_summary(done, {"step": "resnet50", "seed": 0, "status": "done", "dataset": "fashion_mnist",
                               "epochs": 2, "params": 23_528_522, "gmacs": 0.0848, "img_s": 9000.0,
                               "final_top1": 90.1, "precision": "bf16", "cuda_graphs": False})
    failed = store.run_dir(runs, "cifar", "convnext_t", "roadmap", "separate_downsampling", 0)
    store.write_failure(failed, {"step": "separate_downsampling", "seed": 0, "dataset": "fashion_mnist",
                                 "message": "RuntimeError: CUDA out of memory"}, create=True)
    table = {r["step"]: list(r.values()) for r in table_rows(
        "\n".join(gpu_check.training_table(gpu_check.training_rows(runs))), "step")}
    assert table["resnet50"] == ["resnet50", "done", "23,528,522", "0.0848", "9000", "90.10", "bf16", "False"]
    assert table["separate_downsampling"] == ["separate_downsampling", "failed: RuntimeError: CUDA out of memory", "-",
                                              "-", "-", "-", "-", "-"]

    stages = gpu_check.Stages(tmp_path, 300, ["# check", ""])
    monkeypatch.setattr(gpu_check, "stage", lambda name, cmd, timeout, log=None: {  # a sweep that trained nothing
        "stage": name, "ok": True, "code": 0, "seconds": 1.0, "tail": "", "output": ""})
    result = gpu_check.training(stages, ["data=synthetic"], 1, 100)
    assert result["ok"] is False and result["code"] == "0 of 3 runs finished"
    results = {r["stage"]: r["result"] for r in table_rows((tmp_path / "gpu_check.md").read_text(), "stage")}
    assert results["training"] == "FAILED: 0 of 3 runs finished"


def test_a_node_whose_torchcodec_does_not_load_trains_without_robustness_and_says_so(monkeypatch, capsys):
    """TorchCodec's library is built for one torch: on a node with another, the JPEG corruption cannot run."""
    assert gpu_roadmap.robustness_setting() == [] and capsys.readouterr().out == ""
    monkeypatch.setitem(sys.modules, "torchcodec.encoders", None)  # what a failed import leaves
    assert gpu_roadmap.robustness_setting() == ["eval.robustness=false"]
    assert capsys.readouterr().out == ("[gpu-roadmap] TorchCodec does not work here (ModuleNotFoundError: import of "
                                       "torchcodec.encoders halted; None in sys.modules): eval.robustness=false, the "
                                       "runs have no robustness\n")


def test_the_compiled_benchmark_is_left_out_not_failed_when_the_budget_is_short(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "plan", lambda a: [("benchmark, compiled", ["python", "-V"], 360, None)])
    monkeypatch.setattr(gpu_check, "stage", lambda *args, **kwargs: pytest.fail("the stage ran"))
    assert gpu_check.main(["--rehearse", "--budget", "60", "--out", str(tmp_path)]) == 0  # 120 s with the slack
    assert table_rows((tmp_path / "gpu_check.md").read_text(), "stage") == [
        {"stage": "benchmark, compiled", "result": "not run: under 150 s of the budget left", "wall time": "0 s"}]


def test_a_stage_past_its_limit_is_stopped_with_all_its_processes(monkeypatch):
    """SIGTERM to the stage's whole process group, then SIGKILL to what ignores it (a child that outlives its
    parent would keep the GPU busy during the next stages)."""
    monkeypatch.setattr(processes, "GRACE_SECONDS", 1.0)
    t0 = time.time()
    result = processes.bounded("stubborn", ["sh", "-c", "trap '' TERM; sleep 60 & echo $!; wait"], 1.0)
    child = int(result["output"].split()[0])
    assert result["code"] == "stopped at its limit of 1 s" and time.time() - t0 < 10
    time.sleep(0.2)
    assert _state(child) in ("gone", "Z")  # dead (a zombie until whoever adopted it reaps it)
    assert processes.bounded("fine", [sys.executable, "-c", "print('hi')"], 30)["code"] == 0


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def _cost(img_s, fixed=1.0):
    return Cost(img_s=img_s, build=fixed, capture=0.0, checkpoint=0.5, robustness=0.0)


def test_the_plan_counts_every_runs_fixed_costs_and_fits_the_budget():
    runs = [_cost(20_000)] * 18 + [_cost(10_000)] * 18
    p = plan(600, runs, 60_000, 10_000, graphs=False)
    per_epoch = 18 * ((60_000 + 10_000 / 3) / 20_000 + 0.5) + 18 * ((60_000 + 10_000 / 3) / 10_000 + 0.5)
    assert p.seconds_per_epoch == pytest.approx(per_epoch) and p.runs == 36
    assert p.fixed == pytest.approx(36 * (1.0 + gpu_roadmap.JOB_SECONDS))
    assert p.epochs == int((600 - p.fixed) // per_epoch) == 2
    assert p.estimate == pytest.approx(p.fixed + 2 * per_epoch) and p.estimate <= 600
    assert "36 runs x 2 epochs, about 5.3 s per epoch and 2.2 s fixed per run: 7.6 min expected" == p.describe()
    assert plan(100, runs, 60_000, 10_000, False).epochs == 1  # too slow for one: still one, and it says so
    assert plan(100, runs, 60_000, 10_000, False).estimate > 100
    assert plan(36_000, runs, 50_000, 10_000, True, epochs=100).epochs == 100


def test_each_step_costs_what_its_calibrated_stand_in_costs():
    """The roadmap's kinds of network are calibrated; each other step is taken to cost as the last adopted one of
    them before it (the micro design builds on the inverted bottleneck, not on the kernel-11 branch)."""
    stand_in = gpu_roadmap.stand_ins(load_roadmap("convnext_t"))
    assert list(stand_in) == ORDER
    assert [stand_in[s] for s in ("resnet50_classic", "stage_ratio", "widen", "kernel_7", "kernel_11", "gelu",
                                  "layer_norm", "separate_downsampling", "swin_t")] == [
        "resnet50", "resnet50", "depthwise_conv", "inverted_bottleneck", "kernel_11", "inverted_bottleneck",
        "inverted_bottleneck", "separate_downsampling", "swin_t"]
    assert gpu_roadmap.calibration_steps(load_roadmap("bag_of_tricks")) == ["resnet50_original", "mixup"]
    assert set(gpu_roadmap.stand_ins(load_roadmap("convnext_b")).values()) == {
        "resnet200", "depthwise_conv", "inverted_bottleneck", "kernel_11", "separate_downsampling", "swin_b"}


def test_graphs_are_chosen_on_the_sweeps_time_not_on_summed_img_s():
    """Graphs make the fast network much faster and the slow one slower: more img/s in sum, a longer sweep."""
    costs = {("fast", False): _cost(20_000), ("fast", True): _cost(40_000),
             ("slow", False): _cost(2_000), ("slow", True): _cost(1_500)}
    assert 40_000 + 1_500 > 20_000 + 2_000 and faster(costs, ["fast", "slow"]) is False
    costs["slow", True] = _cost(2_200)
    assert faster(costs, ["fast", "slow"]) is True
    assert faster({("fast", False): _cost(1)}, ["fast"]) is False  # no graphs measured (a CPU): eager


def _idx_gz(path, magic, shape, values):
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in shape)
    with gzip.open(path, "wb") as f:
        f.write(header + bytes(values))


def test_fashion_mnist_from_the_kits_gzipped_files_and_its_first_images(tmp_path, monkeypatch):
    """An offline node has no Debian package: the kit carries the four .gz files in torchvision's layout."""
    monkeypatch.setattr(data_lib, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    raw = tmp_path / "kit" / "fashion_mnist" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 12), ("t10k", 6)):
        _idx_gz(raw / f"{split}-images-idx3-ubyte.gz", 2051, (n, 28, 28), [i % 256 for i in range(n * 784)])
        _idx_gz(raw / f"{split}-labels-idx1-ubyte.gz", 2049, (n,), [i % 10 for i in range(n)])
    cfg = validate(compose(["+step=gelu", f"data.root={tmp_path / 'kit' / 'fashion_mnist'}", "data.download=false",
                            "+data.train_size=5"])).data
    train, val = data_lib.load_tensor_dataset(cfg, "cpu")
    assert train.images.shape == (5, 1, 32, 32) and val.images.shape == (6, 1, 32, 32)
    assert train.labels.tolist() == [0, 1, 2, 3, 4] and val.labels.tolist() == [0, 1, 2, 3, 4, 5]


def test_the_kit_carries_what_a_pytorch_container_lacks_and_installs_without_resolving(tmp_path):
    carried = gpu_kit.missing()
    for name in ("hydra-core", "omegaconf", "antlr4-python3-runtime", "optuna", "alembic", "sqlalchemy", "mako",
                 "colorlog", "hydra-joblib-launcher", "torchcodec"):
        assert name in carried, name
    for name in ("torch", "torchvision", "numpy", "scipy", "pandas", "matplotlib", "statsmodels", "joblib",
                 "filelock", "tqdm", "pytest", "pillow", "jinja2", "markupsafe", "typing-extensions"):
        assert name not in carried, name  # the container's, or what its packages depend on
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("hydra-core==1.3.8\nomegaconf==2.3.1\nantlr4-python3-runtime==4.9.3\nPyYAML==6.0.2\n")
    assert "hydra-core" not in gpu_kit.missing(freeze) and "optuna" in gpu_kit.missing(freeze)
    kit = tmp_path / "kit"
    (kit / "wheels").mkdir(parents=True)
    for name in ("a-1-py3-none-any.whl", "b-2-py3-none-any.whl"):
        (kit / "wheels" / name).write_text("")
    cmd = gpu_kit.install_command(kit)
    assert cmd[3:8] == ["install", "-q", "--no-index", "--no-deps", "--upgrade"] and "--target" in cmd
    assert cmd[-2:] == [str(kit / "wheels" / "a-1-py3-none-any.whl"), str(kit / "wheels" / "b-2-py3-none-any.whl")]
    assert gpu_kit.main(["install", str(tmp_path / "nokit")]) == 2


def test_the_kit_is_small_and_its_wheels_install_offline_and_import(tmp_path):
    """Built for this python (the node's is 3.12; the same packages), installed with no index into a target folder,
    and Hydra, OmegaConf and Optuna import from there."""
    kit = tmp_path / "kit"
    manifest = gpu_kit.build(kit, None, python=f"{sys.version_info.major}.{sys.version_info.minor}")
    assert manifest["size_mb_but_torchcodec"] < gpu_kit.LIMIT_MB < manifest["size_mb"] < 60
    assert set(manifest["packages"]) == set(gpu_kit.missing())
    assert len(manifest["wheels"]) == len(manifest["packages"])
    assert sorted(p.name for p in (kit / "fashion_mnist" / "FashionMNIST" / "raw").iterdir()) == sorted(
        f"{f}.gz" for f in data_lib.FASHION_FILES)
    assert gpu_kit.main(["install", str(kit)]) == 0
    probe = subprocess.run([sys.executable, "-c", "import hydra, omegaconf, optuna; "
                            "print(hydra.__file__, omegaconf.__file__, optuna.__file__)"],
                           env={**os.environ, "PYTHONPATH": str(kit / "site")}, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert all(path.startswith(str(kit / "site")) for path in probe.stdout.split())
