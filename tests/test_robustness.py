"""Robustness per step: the corruptions, mCE, what a run measures after training, and the report's section."""

import json
import math

import pandas as pd
import pytest
import torch

from roadmap.report import build as report

from roadmap.report import stats
from roadmap.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from roadmap.errors import ConfigError

from helpers import TINY, run_here, summary, table_rows
from test_report import fake_runs


def images(n=24, side=32, channels=1):
    """Smooth images with edges (blurred noise plus a bright square), as uint8: what a photo or a garment is like,
    unlike white noise, which blurring and JPEG change the most at their mildest."""
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(n, channels, side, side, generator=g), 5, 1, 2)
    x[:, :, side // 4:side // 2, side // 4:side // 2] += 0.5
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_corruptions_are_seeded_start_clean_and_grow_with_severity(channels):
    x = images(channels=channels)
    for name in CORRUPTIONS:
        assert torch.equal(corrupt(x, name, 0), x), name  # severity 0: the clean image
        distance = [(corrupt(x, name, s).float() - x.float()).abs().mean().item() for s in (0, *SEVERITIES)]
        assert distance[0] == 0 and all(a < b for a, b in zip(distance, distance[1:])), (name, distance)
        again = corrupt(x, name, 2)
        assert again.dtype == torch.uint8 and again.shape == x.shape and torch.equal(again, corrupt(x, name, 2))
    random = ("gaussian_noise", "elastic")  # the ones that draw: another seed, other images
    assert all(not torch.equal(corrupt(x, n, 2, seed=0), corrupt(x, n, 2, seed=1)) for n in random)
    assert torch.equal(corrupt(x, "contrast", 2, seed=0), corrupt(x, "contrast", 2, seed=1))
    with pytest.raises(ConfigError, match="corruption 'fog': one of gaussian_noise"):
        corrupt(x, "fog", 1)
    with pytest.raises(ConfigError, match="severity 4: one of 0, 1, 2, 3"):
        corrupt(x, "jpeg", 4)


def test_brightness_raises_the_hsv_value_as_imagenet_c_does():
    x = torch.tensor([[[[0]], [[60]], [[120]]], [[[0]], [[0]], [[0]]]], dtype=torch.uint8)  # a color, black
    out = corrupt(x, "brightness", 3).float() / 255  # +0.3 on the value: 120/255 -> 120/255 + 0.3
    value = 120 / 255 + 0.3
    assert out[0, :, 0, 0].tolist() == pytest.approx([0, value / 2, value], abs=1 / 255)  # hue, saturation kept
    assert out[1, :, 0, 0].tolist() == pytest.approx([0.3] * 3, abs=1 / 255)  # black turns gray


def test_mce_on_known_numbers():
    # CE_noise = (30 + 40) / (20 + 30) = 1.4, CE_blur = (10 + 10) / (20 + 20) = 0.5: mCE = 95%
    assert stats.mean_corruption_error({"noise": [30, 40], "blur": [10, 10]},
                                       {"noise": [20, 30], "blur": [20, 20], "jpeg": [5, 5]}) == pytest.approx(95.0)
    assert stats.mean_corruption_error({"noise": [1, 2]}, {"noise": [1, 2]}) == pytest.approx(100.0)
    assert math.isnan(stats.mean_corruption_error({"noise": [1]}, {"blur": [1]}))


def test_a_run_measures_robustness_and_a_finished_run_without_it_gets_it_from_its_checkpoint(tmp_path, capsys):
    args = ["+step=layer_norm", *TINY]
    code, out, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 0, err
    run_dir = tmp_path / "embedded/convnext_t/layer_norm/seed0"
    record = summary(run_dir)["robustness"]
    assert record["images"] == 16 and set(record["top1"]) == set(CORRUPTIONS)
    assert all(len(v) == 3 and all(0 <= t <= 100 for t in v) for v in record["top1"].values())
    assert record["mean_top1"] == pytest.approx(sum(sum(v) for v in record["top1"].values()) / 21)
    assert "[layer_norm] robustness: top-1 " in out and "7 corruptions x 3 severities of 16 images" in out

    body = summary(run_dir)  # as a run finished before robustness was measured
    del body["robustness"]
    (run_dir / "summary.json").write_text(json.dumps(body))
    code, out, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 0 and "already finished" in out and "[layer_norm] robustness: top-1 " in out, err
    assert summary(run_dir)["robustness"]["top1"] == record["top1"]  # the same model, the same corrupted images
    assert summary(run_dir)["final_top1"] == body["final_top1"]

    code, out, _ = run_here(*args, "eval.robustness=false", "seed=1", runs_root=tmp_path, capsys=capsys)
    assert code == 0 and "robustness:" not in out
    assert "robustness" not in summary(tmp_path / "embedded/convnext_t/layer_norm/seed1")
    code, _, err = run_here(*args, "eval.robustness_images=0", runs_root=tmp_path, capsys=capsys)
    assert code == 2 and "eval.robustness_images=0: must be an integer >= 1" in err


def corrupted(s: dict) -> float:
    """The planted corrupted top-1 of a run (its summary `s`): clean - 10, plus seed noise that differs from step to
    step (paired seeds do not cancel it), plus 2 (and 0.1 a seed) from gelu on: gelu is more robust than kernel_7,
    which shares its noise."""
    noise = 0.3 * ((s["seed"] + (s["order"] or 0)) % 3 - 1)
    return s["final_top1"] - 10 + noise + (2 + 0.1 * s["seed"] if (s["order"] or 0) >= 12 else 0)


def planted_robustness(runs_dir):
    """Every finished run's robustness record, with corrupted(s) under every corruption and severity."""
    runs = {}
    for path in runs_dir.rglob("summary.json"):
        try:
            s = json.loads(path.read_text())
        except ValueError:
            continue
        if s["status"] != "done":
            continue
        value = corrupted(s)
        s["robustness"] = {"images": 100, "clean_top1": s["final_top1"], "mean_top1": value, "seconds": 1.0,
                           "top1": {c: [value] * 3 for c in CORRUPTIONS}}
        path.write_text(json.dumps(s))
        runs[(s["step"], s["seed"])] = value
    return runs


def test_report_gives_paired_robustness_verdicts_and_mce(tmp_path):
    runs_dir = tmp_path / "runs"
    fake_runs(runs_dir, effect=lambda s, k: 80.0 + 0.01 * s.order + (k % 2))
    value = planted_robustness(runs_dir)
    written = report.report(runs_dir, tmp_path / "out")
    assert {tmp_path / "out" / f"robustness.{e}" for e in ("png", "pdf")} <= set(written)
    steps = pd.read_csv(tmp_path / "out" / "steps.csv").set_index("step")
    verdicts = steps["corrupted_verdict"].dropna()
    assert list(verdicts[verdicts.isin(["helps", "hurts"])].index) == ["gelu"]
    assert steps.loc["gelu", "corrupted_verdict"] == "helps" and steps.loc["fewer_activations",
                                                                           "corrupted_verdict"] == "unresolved"
    assert steps.loc["gelu", "corrupted_change"] == pytest.approx(
        sum(value[("gelu", k)] - value[("kernel_7", k)] for k in range(3)) / 3)
    expected = [100 * (100 - value[("gelu", k)]) / (100 - value[("resnet50", k)]) for k in range(3)]
    assert steps.loc["gelu", "mce"] == pytest.approx(sum(expected) / 3)
    assert steps.loc["resnet50", "mce"] == pytest.approx(100.0)
    agree = json.loads((tmp_path / "out" / "agreement.json").read_text())
    assert agree["robustness"] == {"helps": ["gelu"], "hurts": []}
    runs = pd.read_csv(tmp_path / "out" / "results.csv")
    gelu = runs[runs["step"] == "gelu"].set_index("seed")["corrupted_top1"]
    assert "robustness" not in runs and [gelu[k] for k in range(3)] == pytest.approx([value[("gelu", k)]
                                                                                      for k in range(3)])
    md = (tmp_path / "out" / "results.md").read_text()
    row = next(r for r in table_rows(md[md.index("robustness to corruptions"):], "#") if r["step"] == "gelu")
    assert row["verdict"] == "**helps**" and row["mCE"] == f"{steps.loc['gelu', 'mce']:.1f}"
