"""The roadmap network: composition of every step, the paper's GMACs, torchvision equivalence, bad values."""

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
import torchvision
import yaml

import roadmap
from roadmap.config import CONF_DIR, compose, model_config, step_model_config
from roadmap.model import ConfigError, ModelConfig, RoadmapNet, num_params

STEPS = {regime: roadmap.steps(regime) for regime in ("r50", "r200")}


def own_switches(step):
    """The model fields a step file sets itself (not through the step it includes)."""
    return set((yaml.safe_load((CONF_DIR / "step" / f"{step}.yaml").read_text()) or {}).get("model", {}))


@pytest.mark.parametrize("regime", ["r50", "r200"])
def test_every_step_is_its_parent_plus_its_own_switches(regime):
    configs = {s.name: dataclasses.asdict(step_model_config(s.name, regime)) for s in STEPS[regime]}
    baseline = configs[STEPS[regime][1].name]
    assert baseline == dataclasses.asdict(dataclasses.replace(
        ModelConfig(), depths=(3, 4, 6, 3) if regime == "r50" else (3, 24, 36, 3)))
    assert configs[STEPS[regime][0].name] == baseline  # the classic-recipe step: same network
    for s in STEPS[regime]:
        if s.parent is None:
            continue
        changed = {k for k, v in configs[s.name].items() if configs[s.parent][k] != v}
        assert changed and changed <= own_switches(s.name), s.name  # r50's stage_ratio keeps width 64
    expected = {"stage_ratio": {"depths", "width"} if regime == "r200" else {"depths"},
                "separate_downsampling": {"downsampling", "layer_scale"}, "kernel_9": {"kernel_size"}}
    for name, fields in expected.items():
        parent = next(s.parent for s in STEPS[regime] if s.name == name)
        assert {k for k, v in configs[name].items() if configs[parent][k] != v} == fields


def test_step_files_and_roadmap_table_agree():
    files = {p.stem for p in (CONF_DIR / "step").glob("*.yaml")}
    assert files == {s.name for r in STEPS.values() for s in r} | {"baseline", "baseline_classic"}
    assert [s.name for s in STEPS["r50"]][:3] == ["resnet50_classic", "resnet50", "stage_ratio"]
    assert [s.name for s in STEPS["r50"]][-1] == "separate_downsampling"
    assert [s.name for s in STEPS["r50"]][2:] == [s.name for s in STEPS["r200"]][2:]
    assert [s.name for s in STEPS["r50"] if not s.adopted] == ["kernel_5", "kernel_9", "kernel_11"]


@pytest.mark.parametrize("regime", ["r50", "r200"])
def test_baseline_aliases_name_the_regime_baseline(regime):
    net = "resnet50" if regime == "r50" else "resnet200"
    assert compose(["+step=baseline", f"regime={regime}"]).step == net
    classic = compose(["+step=baseline_classic", f"regime={regime}"])
    assert classic.step == f"{net}_classic" and classic.recipe.name == "classic"
    assert model_config(classic) == model_config(compose([f"+step={net}", f"regime={regime}"]))


def test_classic_step_switches_the_recipe_only():
    cfg = compose(["+step=resnet50_classic"])
    assert cfg.recipe.name == "classic" and cfg.recipe.optimizer == "sgd"
    assert compose(["+step=resnet50"]).recipe.name == "modern"
    assert cfg.run_dir == "runs/embedded/r50/resnet50_classic/seed0"


@pytest.mark.parametrize("regime,tolerance", [("r50", 0.005), ("r200", 0.01)])
def test_gmacs_match_the_paper(regime, tolerance):
    from roadmap.complexity import table

    rows = table(regime)
    assert [r["step"] for r in rows] == [s.name for s in STEPS[regime]]
    for r in rows:
        assert abs(r["gmacs"] - r["paper_gmacs"]) <= tolerance, r
    params = {r["step"]: r["params"] for r in rows}
    assert params["resnet50" if regime == "r50" else "resnet200"] == (25_557_032 if regime == "r50" else 64_673_832)
    assert params["separate_downsampling"] == (28_589_128 if regime == "r50" else 88_591_464)


def _randomize(model):
    """Random weights everywhere, including BN statistics and layer scale, so every tensor matters."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "running_var" in name
                        else torch.randn(t.shape, generator=g) * (0.05 if t.dim() > 1 else 0.5))
    return model.eval()


@pytest.mark.parametrize("name", ["resnet50", "convnext_tiny"])
def test_endpoints_equal_torchvision(name):
    tv = _randomize(getattr(torchvision.models, name)())
    ours = roadmap.from_torchvision(tv).eval()
    step = "resnet50" if name == "resnet50" else "separate_downsampling"
    assert dataclasses.replace(ours.config, layer_scale=1e-6) == dataclasses.replace(
        step_model_config(step), layer_scale=1e-6)
    assert num_params(ours) == num_params(tv)
    assert [tuple(p.shape) for p in roadmap.build_model(step).state_dict().values()] == \
        [tuple(p.shape) for p in ours.state_dict().values()]
    torch.manual_seed(1)
    with torch.no_grad():
        for shape in [(2, 3, 224, 224), (1, 3, 160, 192), (3, 3, 96, 96)]:
            x = torch.randn(shape)
            expected = tv(x)
            assert expected.abs().max() > 1e-2  # the comparison is not between near-zero logits
            assert (ours(x) - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name", ["resnet101", "convnext_small"])
def test_deeper_torchvision_models_convert(name):
    tv = _randomize(getattr(torchvision.models, name)(num_classes=17))
    ours = roadmap.from_torchvision(tv).eval()
    assert ours.config.num_classes == 17
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - tv(x)).abs().max().item() <= 1e-4


def test_from_torchvision_rejects_other_models():
    with pytest.raises(ConfigError, match="only plain bottleneck ResNets"):
        roadmap.from_torchvision(torchvision.models.resnet18())
    with pytest.raises(ConfigError, match="not a torchvision ResNet or ConvNeXt"):
        roadmap.from_torchvision(torchvision.models.mobilenet_v3_small())


@pytest.mark.parametrize("step", [s.name for s in STEPS["r50"]])
def test_every_step_trains_on_a_small_input(step):
    torch.manual_seed(0)
    cfg = dataclasses.replace(step_model_config(step), num_classes=5, width_multiplier=0.25, drop_path=0.1)
    model = RoadmapNet(cfg)
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 5)
    torch.nn.functional.cross_entropy(out, torch.tensor([1, 3])).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_grn_block_is_convnext_v2():
    cfg = dataclasses.replace(step_model_config("separate_downsampling"), layer_scale=None, grn=True,
                              width_multiplier=0.25)
    model = RoadmapNet(cfg)
    grns = [m for m in model.modules() if type(m).__name__ == "GRN"]
    assert len(grns) == 18 and all(g.gamma.abs().sum() == 0 for g in grns)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


def test_layer_norm_network_runs_channels_last_with_biases():
    model = roadmap.build_model("layer_norm")
    block = model.stages[1][1]
    kinds = [type(m).__name__ for m in block.branch]
    assert kinds == ["Conv2d", "Permute", "LayerNorm", "Linear", "GELU", "Linear", "Permute"]
    assert all(m.bias is not None for m in block.branch if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    resnet = roadmap.build_model("resnet50")
    assert all(m.bias is None for m in resnet.modules() if isinstance(m, torch.nn.Conv2d))


BAD_VALUES = [
    ({"stem": "conv"}, "model.stem='conv': must be one of resnet, patchify"),
    ({"spatial_conv": "grouped"}, "model.spatial_conv='grouped': must be one of dense, depthwise"),
    ({"block": "basic"}, "model.block='basic': must be one of bottleneck, inverted"),
    ({"conv_position": "last"}, "model.conv_position='last': must be one of middle, first"),
    ({"kernel_size": 4}, "model.kernel_size=4: must be one of (3, 5, 7, 9, 11)"),
    ({"kernel_size": 13}, "model.kernel_size=13: must be one of (3, 5, 7, 9, 11)"),
    ({"activation": "silu"}, "model.activation='silu': must be one of relu, gelu"),
    ({"activations": "none"}, "model.activations='none': must be one of all, one"),
    ({"norms": "two"}, "model.norms='two': must be one of all, one"),
    ({"norm": "group"}, "model.norm='group': must be one of batch, layer"),
    ({"downsampling": "pool"}, "model.downsampling='pool': must be one of in_block, separate"),
    ({"depths": []}, "model.depths=[]: must be a non-empty list of positive integers"),
    ({"depths": (3, 0, 3)}, "model.depths=(3, 0, 3): must be a non-empty list of positive integers"),
    ({"width": 0}, "model.width=0: must be a positive integer"),
    ({"layer_scale": -1.0}, "model.layer_scale=-1.0: must be a positive number or null (off)"),
    ({"drop_path": 1.0}, "model.drop_path=1.0: must be a number in [0, 1)"),
    ({"width_multiplier": 0}, "model.width_multiplier=0: must be a positive number"),
    ({"activations": "one"}, "model.activations='one' keeps the activation between the two 1x1 convs, "
                             "which needs model.conv_position='first'"),
    ({"grn": True}, "model.grn=true sits between the two 1x1 convs"),
]


@pytest.mark.parametrize("values,message", BAD_VALUES)
def test_bad_values_are_rejected_when_the_config_is_built(values, message):
    with pytest.raises(ConfigError) as e:
        ModelConfig(**values)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_bad_override_through_hydra_and_unknown_field():
    cfg = compose(["+step=gelu", "model.kernel_size=8"])
    with pytest.raises(ConfigError, match=r"model.kernel_size=8: must be one of"):
        model_config(cfg)
    with pytest.raises(ConfigError, match="model.kernal_size: unknown field"):
        ModelConfig.from_dict({"kernal_size": 3})


def test_build_model_rejects_unknown_steps_and_regimes():
    with pytest.raises(ConfigError, match=r"step='kernel_13' is not a step of regime r50; its steps: "
                                          r"resnet50_classic, resnet50, stage_ratio"):
        roadmap.build_model("kernel_13")
    with pytest.raises(ConfigError, match=r"step='resnet200' is not a step of regime r50"):
        roadmap.build_model("resnet200")
    with pytest.raises(ConfigError, match=r"regime='r101': must be one of r50, r200"):
        roadmap.build_model("gelu", regime="r101")


def test_complexity_cli_json():
    out = subprocess.run([sys.executable, "-m", "roadmap.complexity", "--json"], capture_output=True, text=True,
                         check=True).stdout
    rows = json.loads(out)
    assert [r["step"] for r in rows] == roadmap.step_names("r50")
    assert {"step", "params", "gmacs"} <= set(rows[0])
    assert rows[-1]["gmacs"] == 4.456 and rows[-1]["params"] == 28_589_128
    bad = subprocess.run([sys.executable, "-m", "roadmap.complexity", "regime=r18"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: regime='r18': must be one of r50, r200"
