"""The roadmap network: composition of every step, the paper's GMACs, torchvision equivalence, bad values."""

import dataclasses
import json

import pytest
import torch
import torchvision
import yaml

import roadmap
from roadmap.config import CONF_DIR, compose, model_config, step_model_config
from roadmap.nets.model import ConfigError, ModelConfig, RoadmapNet, num_params

ROADMAPS = ("convnext_t", "convnext_b", "bag_of_tricks")
STEPS = {name: list(roadmap.load_roadmap(name).steps) for name in ROADMAPS}
BASELINE_DEPTHS = {"convnext_t": (3, 4, 6, 3), "convnext_b": (3, 24, 36, 3), "bag_of_tricks": (3, 4, 6, 3)}


def own_switches(step):
    """The model fields a step file sets itself (not through the step it includes)."""
    return set((yaml.safe_load((CONF_DIR / "step" / f"{step}.yaml").read_text()) or {}).get("model", {}))


@pytest.mark.parametrize("name", ROADMAPS)
def test_every_step_is_its_parent_plus_its_own_switches(name):
    configs = {s.name: dataclasses.asdict(step_model_config(s.name, name)) for s in STEPS[name]}
    first = STEPS[name][0]
    baseline = configs[roadmap.load_roadmap(name).baseline]
    expected = dataclasses.replace(ModelConfig(), depths=BASELINE_DEPTHS[name],
                                   stride_conv="first" if name == "bag_of_tricks" else "spatial")
    assert baseline == dataclasses.asdict(expected) and configs[first.name] == baseline
    for s in STEPS[name]:
        if s.parent is None:
            continue
        changed = {k for k, v in configs[s.name].items() if configs[s.parent][k] != v}
        assert changed <= own_switches(s.name), s.name  # convnext_t's stage_ratio keeps width 64
    expected = {"convnext_t": {"stage_ratio": {"depths"}, "separate_downsampling": {"downsampling", "layer_scale"},
                               "kernel_9": {"kernel_size"}},
                "convnext_b": {"stage_ratio": {"depths", "width"}},
                "bag_of_tricks": {"resnet_b": {"stride_conv"}, "resnet_c": {"stem"}, "resnet_d": {"shortcut"},
                                  "zero_gamma": {"zero_init_residual"}, "cosine_lr": set(), "batch_1024": set()}}
    for step, fields in expected[name].items():
        parent = next(s.parent for s in STEPS[name] if s.name == step)
        assert {k for k, v in configs[step].items() if configs[parent][k] != v} == fields, step


@pytest.mark.parametrize("name", ROADMAPS)
def test_roadmap_parents_are_the_steps_their_files_include(name):
    """The roadmap's `parent` of a step is what its config builds on: declared by the step file's defaults, by the
    roadmap only where the file builds on no step (the baselines, stage_ratio: the roadmap sets their network)."""
    from roadmap.config import lineage

    baseline = roadmap.load_roadmap(name).baseline
    checked = 0
    for s in STEPS[name]:
        if s.parent is None or s.name in (baseline, "stage_ratio"):
            continue  # the baseline and stage_ratio set the baseline network's values themselves: they include nothing
        assert lineage(s.name)[1:2] == [s.parent], s.name
        checked += 1
    assert checked == len(STEPS[name]) - (3 if name != "bag_of_tricks" else 1)


def test_step_files_and_roadmaps_agree():
    files = {p.stem for p in (CONF_DIR / "step").glob("*.yaml")}
    references = {p.stem for p in (CONF_DIR / "reference").glob("*.yaml")}
    assert references == {"swin_t", "swin_b"}  # each also a step file, so that sweeps list it
    assert files == {s.name for r in STEPS.values() for s in r} | {"baseline", "baseline_classic"} | references
    names = {k: [s.name for s in v] for k, v in STEPS.items()}
    assert names["convnext_t"][:3] == ["resnet50_classic", "resnet50", "stage_ratio"]
    assert names["convnext_t"][-1] == "separate_downsampling"
    assert names["convnext_t"][2:] == names["convnext_b"][2:]
    assert [s.name for s in STEPS["convnext_t"] if not s.adopted] == ["kernel_5", "kernel_9", "kernel_11"]
    assert names["bag_of_tricks"] == ["resnet50_original", "batch_1024", "lr_warmup", "zero_gamma", "no_bias_decay",
                                      "mixed_precision", "resnet_b", "resnet_c", "resnet_d", "cosine_lr",
                                      "label_smoothing", "mixup"]
    bot = roadmap.load_roadmap("bag_of_tricks")
    assert bot.step("mixup").top1 == 79.15 and bot.step("resnet_d").top5 == 93.52 and "distillation" in bot.notes


@pytest.mark.parametrize("name", ["convnext_t", "convnext_b"])
def test_baseline_aliases_name_the_roadmap_baseline(name):
    net = "resnet50" if name == "convnext_t" else "resnet200"
    assert compose(["+step=baseline", f"roadmap={name}"]).step == net
    classic = compose(["+step=baseline_classic", f"roadmap={name}"])
    assert classic.step == f"{net}_classic" and classic.recipe.name == "classic"
    assert model_config(classic) == model_config(compose([f"+step={net}", f"roadmap={name}"]))


def test_bag_of_tricks_recipe_steps():
    def cfg(step, *extra):
        return compose([f"+step={step}", "roadmap=bag_of_tricks", *extra])

    base = cfg("resnet50_original")
    assert base.recipe.name == "classic" and list(base.recipe.milestones) == [0.25, 0.5, 0.75]
    assert base.train.precision == "fp32" and base.recipe.decay_norm_and_bias and base.recipe.warmup == 0
    assert base.train.batch_size == 256 and cfg("batch_1024").train.batch_size == 1024
    assert cfg("batch_1024", "scale=imagenet").train.batch_size == 4 * 4096
    assert cfg("lr_warmup").recipe.warmup == pytest.approx(5 / 120, abs=1e-3)
    assert cfg("no_bias_decay").recipe.decay_norm_and_bias is False
    assert cfg("mixed_precision").train.precision == "mixed"
    assert cfg("cosine_lr").recipe.schedule == "cosine" and cfg("label_smoothing").recipe.label_smoothing == 0.1
    mixup = cfg("mixup")
    assert mixup.recipe.mixup == 0.2 and mixup.train.epochs == 3 and mixup.train.batch_size == 1024
    assert cfg("mixup", "scale=cifar").train.epochs == 167  # 100 x 200/120
    assert cfg("mixup", "train.epochs=7").train.epochs == 7  # the command line wins


def test_classic_step_switches_the_recipe_only():
    cfg = compose(["+step=resnet50_classic"])
    assert cfg.recipe.name == "classic" and cfg.recipe.optimizer == "sgd"
    assert compose(["+step=resnet50"]).recipe.name == "modern"
    assert cfg.run_dir == "runs/embedded/convnext_t/resnet50_classic/seed0"


@pytest.mark.parametrize("name,tolerance", [("convnext_t", 0.005), ("convnext_b", 0.01), ("bag_of_tricks", 0.06)])
def test_gmacs_match_the_paper(name, tolerance):
    from roadmap.bench.complexity import table

    rows = table(name)
    assert [r["step"] for r in rows] == [s.name for s in STEPS[name]]
    for r in rows:
        assert abs(r["gmacs"] - r["paper_gmacs"]) <= tolerance, r
    params = {r["step"]: r["params"] for r in rows}
    first, last = STEPS[name][1].name, STEPS[name][-1].name
    expected = {"convnext_t": (25_557_032, 28_589_128), "convnext_b": (64_673_832, 88_591_464),
                "bag_of_tricks": (25_557_032, 25_576_264)}[name]  # torchvision resnet50 / convnext; timm resnet50d
    assert (params[first], params[last]) == expected
    if name == "bag_of_tricks":  # the paper rounds to 0.1 G: 3.86 (stride on the 1x1), 4.09, 4.33, 4.33
        assert [r["gmacs"] for r in rows if r["step"] in ("resnet50_original", "resnet_b", "resnet_c")] == \
            [3.858, 4.089, 4.329]


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


@pytest.mark.parametrize("step", [s.name for s in STEPS["convnext_t"]])
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


LAYOUT_SWITCHES = {"conv_position": ("middle", "first"), "norm": ("batch", "layer"), "stride_conv": ("spatial", "first"),
                   "downsampling": ("in_block", "separate"), "block": ("bottleneck", "inverted"), "norms": ("all", "one"),
                   "activations": ("all", "one"), "grn": (False, True)}


def test_every_valid_block_keeps_its_layouts():
    """Every valid combination of the switches that place a block's Linear layers and permutes: inside each block
    every module gets the layout it needs (Linear and LayerNorm channels last, the rest channels first), starting and
    ending channels first, and the network runs at two resolutions (a Linear over the width would not)."""
    import itertools

    from roadmap.nets.model import LayerNorm2d, Permute

    valid = 0
    for values in itertools.product(*LAYOUT_SWITCHES.values()):
        try:
            cfg = ModelConfig.from_dict({**dict(zip(LAYOUT_SWITCHES, values)), "depths": [1, 1, 1, 1], "width": 64,
                                         "width_multiplier": 0.125, "num_classes": 10, "in_channels": 1,
                                         "layer_scale": None})
        except ConfigError:
            continue
        valid += 1
        net = RoadmapNet(cfg).eval()
        for block in (b for stage in net.stages for b in stage if hasattr(b, "branch")):
            layout = "cf"
            for m in block.branch:
                if isinstance(m, Permute):
                    layout = "cl" if layout == "cf" else "cf"
                elif isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm)) and not isinstance(m, LayerNorm2d):
                    assert layout == "cl", (values, block.branch)
                elif isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d, LayerNorm2d)):
                    assert layout == "cf", (values, block.branch)
            assert layout == "cf", values
        for size in (32, 48):
            assert net(torch.zeros(2, 1, size, size)).shape == (2, 10), values
    assert valid >= 64  # of 256: the invalid ones are rejected when the config is built


BAD_VALUES = [
    ({"stem": "conv"}, "model.stem='conv': must be one of resnet, patchify, deep"),
    ({"stride_conv": "last"}, "model.stride_conv='last': must be one of spatial, first"),
    ({"shortcut": "maxpool"}, "model.shortcut='maxpool': must be one of conv, avgpool"),
    ({"zero_init_residual": 1}, "model.zero_init_residual=1: must be true or false"),
    ({"zero_init_residual": True, "norms": "one", "conv_position": "first"},
     "model.zero_init_residual=true zeroes the norm after the branch's last conv, which needs model.norms='all'"),
    ({"stride_conv": "first", "norm": "layer"}, "model.stride_conv='first' strides the first 1x1 conv"),
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


def test_build_model_rejects_unknown_steps_and_roadmaps():
    with pytest.raises(ConfigError, match=r"step='kernel_13' is not a step of roadmap convnext_t; its steps: "
                                          r"resnet50_classic, resnet50, stage_ratio"):
        roadmap.build_model("kernel_13")
    with pytest.raises(ConfigError, match=r"step='resnet200' is not a step of roadmap convnext_t and does not build "
                                          r"on one"):
        roadmap.build_model("resnet200")
    with pytest.raises(ConfigError, match=r"roadmap='r101': no roadmap/r101.yaml in conf/ or the config dirs; "
                                          r"roadmaps: bag_of_tricks, convnext_b, convnext_t"):
        roadmap.build_model("gelu", roadmap="r101")


def test_complexity_cli_rejects_an_unknown_roadmap(capsys):
    from roadmap.bench.complexity import main  # what `python -m roadmap.bench.complexity` exits with

    code = main(["roadmap=r18"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().startswith("error: roadmap='r18': no roadmap/r18.yaml")


USER_ROADMAP = """# @package _global_
roadmap:
  name: mine
  title: ConvNeXt-T and a smaller kernel
  baseline: resnet50
  stage_ratio: {depths: [3, 3, 9, 3], width: 64}  # what conf/step/stage_ratio.yaml and widen.yaml read
  widen_width: 96
  drop_path: 0.1
  steps:
    resnet50: {top1: 78.82, gmacs: 4.089}
    separate_downsampling: {parent: resnet50, label: ConvNeXt-T, top1: 81.97}
    dw_kernel_3: {parent: separate_downsampling, label: kernel 3}
model: {depths: [3, 4, 6, 3], width: 64}
"""


def write_user_roadmap(folder):
    write_user_step(folder)
    (folder / "roadmap").mkdir(parents=True, exist_ok=True)
    (folder / "roadmap" / "mine.yaml").write_text(USER_ROADMAP)


def test_complexity_of_a_users_roadmap_with_its_own_step(tmp_path, capsys):
    """A user's step without a published number shows its own params and GMACs only."""
    from roadmap.bench.complexity import main  # what `python -m roadmap.bench.complexity` exits with

    write_user_roadmap(tmp_path)
    code = main(["roadmap=mine", "--config-dir", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = {r["step"]: r for r in json.loads(out)}
    assert list(rows) == ["resnet50", "separate_downsampling", "dw_kernel_3"]
    assert {"step", "label", "params", "gmacs", "paper_gmacs", "paper_top1"} <= set(rows["resnet50"])
    assert rows["resnet50"]["params"] == 25_557_032 and rows["resnet50"]["paper_gmacs"] == 4.089
    assert rows["dw_kernel_3"]["paper_gmacs"] is None and rows["dw_kernel_3"]["paper_top1"] is None
    assert rows["separate_downsampling"]["gmacs"] == 4.456
    assert rows["dw_kernel_3"]["params"] < rows["separate_downsampling"]["params"] == 28_589_128
    assert 4.3 < rows["dw_kernel_3"]["gmacs"] < 4.456  # 3x3 instead of 7x7 depthwise kernels


def write_user_step(folder):
    (folder / "step").mkdir(parents=True, exist_ok=True)
    (folder / "step" / "dw_kernel_3.yaml").write_text(
        "# @package _global_\n# ConvNeXt-T with the 3x3 depthwise kernel of the roadmap's start\ndefaults:\n"
        "  - separate_downsampling\n  - _self_\nstep: dw_kernel_3\nmodel:\n  kernel_size: 3\n")


def test_a_composed_config_is_kept_until_a_file_it_reads_changes(tmp_path):
    """compose keeps what it composed per process: each call gets its own copy, and an edited step file is read
    again (the files' modification times and sizes are the key)."""
    write_user_step(tmp_path)
    args = (["+step=dw_kernel_3"], [tmp_path])
    first = compose(*args)
    first.model.kernel_size = 99  # a caller's change stays in its copy
    assert compose(*args).model.kernel_size == 3
    assert step_model_config("dw_kernel_3", config_dirs=[tmp_path]).kernel_size == 3
    step = tmp_path / "step" / "dw_kernel_3.yaml"
    step.write_text(step.read_text().replace("kernel_size: 3", "kernel_size: 11"))
    assert compose(*args).model.kernel_size == 11
    assert step_model_config("dw_kernel_3", config_dirs=[tmp_path]).kernel_size == 11
    step.unlink()
    with pytest.raises(ConfigError, match="step='dw_kernel_3'"):
        step_model_config("dw_kernel_3", config_dirs=[tmp_path])


@pytest.mark.parametrize("name", ["resnet50d", "resnet50"])
def test_timm_resnets_are_roadmap_networks(name):
    """timm's resnet50d is ResNet-C + D (deep stem, average-pooled shortcut) on torchvision's ResNet-B: the same
    logits after loading its weights into ours."""
    import timm
    tm = _randomize(timm.create_model(name, pretrained=False, num_classes=11))
    ours = roadmap.from_timm(tm).eval()
    assert num_params(ours) == num_params(tm)
    resnet_d = dataclasses.replace(step_model_config("resnet_d", "bag_of_tricks"), zero_init_residual=False)
    if name == "resnet50d":
        assert (ours.config.stem, ours.config.shortcut, ours.config.stride_conv) == ("deep", "avgpool", "spatial")
        assert dataclasses.replace(ours.config, num_classes=1000) == resnet_d
    torch.manual_seed(2)
    with torch.no_grad():
        for shape in [(2, 3, 128, 128), (1, 3, 97, 75)]:  # odd sizes: ceil_mode of the average pool matters
            x = torch.randn(shape)
            expected = tm(x)
            assert expected.abs().max() > 1e-2
            assert (ours(x) - expected).abs().max().item() <= 1e-4


def test_bag_of_tricks_networks():
    """ResNet-A strides its first 1x1 conv, zero gamma starts every residual branch at zero, ResNet-C's stem is
    three 3x3 convs (32, 32, 64), ResNet-D pools before the shortcut's 1x1 conv."""
    original = roadmap.build_model("resnet50_original", "bag_of_tricks")
    block = original.stages[1][0]
    assert block.branch[0].stride == (2, 2) and block.branch[3].stride == (1, 1)
    zero = roadmap.build_model("zero_gamma", "bag_of_tricks").eval()
    norms = [[m for m in b.branch if isinstance(m, torch.nn.BatchNorm2d)][-1] for s in zero.stages for b in s]
    assert len(norms) == 16 and all(n.weight.abs().sum() == 0 for n in norms)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():  # every block is its shortcut (+ ReLU) at init
        b = zero.stages[0][1]
        h = zero.stages[0][0](zero.stem(x))
        assert torch.equal(b(h), torch.relu(h))
    c = roadmap.build_model("resnet_c", "bag_of_tricks")
    convs = [m for m in c.stem if isinstance(m, torch.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in convs] == [
        (3, 32, (3, 3), (2, 2)), (32, 32, (3, 3), (1, 1)), (32, 64, (3, 3), (1, 1))]
    d = roadmap.build_model("resnet_d", "bag_of_tricks")
    shortcut = d.stages[1][0].shortcut
    assert isinstance(shortcut[0], torch.nn.AvgPool2d) and shortcut[1].stride == (1, 1)
    assert not isinstance(d.stages[0][0].shortcut[0], torch.nn.AvgPool2d)  # stride 1: no pooling
    assert d(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_presets_are_the_roadmap_endpoints():
    from roadmap.nets.model import CONVNEXT_T, RESNET50

    assert RESNET50 == step_model_config("resnet50")
    assert CONVNEXT_T == step_model_config("separate_downsampling")


# The modules with tensors of two small networks, in registration order: named, and as checkpoints from before the
# names numbered them (frozen from the code of then). ResNet-D has the deep stem and the pooled shortcut, ConvNeXt
# separate downsampling (the stage's layer 0), layer scale, permutes (positions without tensors) and the head's norm.
NAMED_LAYERS = {
    "resnet_d": (dict(stem="deep", shortcut="avgpool"),
                 "stem.conv1 stem.norm1 stem.conv2 stem.norm2 stem.conv3 stem.norm3 stages.0.0.branch.pw1 "
                 "stages.0.0.branch.norm_pw1 stages.0.0.branch.conv_kxk stages.0.0.branch.norm_kxk "
                 "stages.0.0.branch.pw2 stages.0.0.branch.norm_pw2 stages.0.0.shortcut.conv "
                 "stages.0.0.shortcut.norm stages.1.0.branch.pw1 stages.1.0.branch.norm_pw1 "
                 "stages.1.0.branch.conv_kxk stages.1.0.branch.norm_kxk stages.1.0.branch.pw2 "
                 "stages.1.0.branch.norm_pw2 stages.1.0.shortcut.conv stages.1.0.shortcut.norm "
                 "stages.1.1.branch.pw1 stages.1.1.branch.norm_pw1 stages.1.1.branch.conv_kxk "
                 "stages.1.1.branch.norm_kxk stages.1.1.branch.pw2 stages.1.1.branch.norm_pw2 head.fc",
                 "stem.0 stem.1 stem.3 stem.4 stem.6 stem.7 stages.0.0.branch.0 stages.0.0.branch.1 "
                 "stages.0.0.branch.3 stages.0.0.branch.4 stages.0.0.branch.6 stages.0.0.branch.7 "
                 "stages.0.0.shortcut.0 stages.0.0.shortcut.1 stages.1.0.branch.0 stages.1.0.branch.1 "
                 "stages.1.0.branch.3 stages.1.0.branch.4 stages.1.0.branch.6 stages.1.0.branch.7 "
                 "stages.1.0.shortcut.1 stages.1.0.shortcut.2 stages.1.1.branch.0 stages.1.1.branch.1 "
                 "stages.1.1.branch.3 stages.1.1.branch.4 stages.1.1.branch.6 stages.1.1.branch.7 head.2"),
    "convnext": ({},
                 "stem.conv stem.norm stages.0.0 stages.0.0.branch.conv_kxk stages.0.0.branch.norm_kxk "
                 "stages.0.0.branch.pw1 stages.0.0.branch.pw2 stages.1.downsample.norm stages.1.downsample.conv "
                 "stages.1.1 stages.1.1.branch.conv_kxk stages.1.1.branch.norm_kxk stages.1.1.branch.pw1 "
                 "stages.1.1.branch.pw2 stages.1.2 stages.1.2.branch.conv_kxk stages.1.2.branch.norm_kxk "
                 "stages.1.2.branch.pw1 stages.1.2.branch.pw2 head.norm head.fc",
                 "stem.0 stem.1 stages.0.0 stages.0.0.branch.0 stages.0.0.branch.2 stages.0.0.branch.3 "
                 "stages.0.0.branch.5 stages.1.0.0 stages.1.0.1 stages.1.1 stages.1.1.branch.0 stages.1.1.branch.2 "
                 "stages.1.1.branch.3 stages.1.1.branch.5 stages.1.2 stages.1.2.branch.0 stages.1.2.branch.2 "
                 "stages.1.2.branch.3 stages.1.2.branch.5 head.2 head.3"),
}


@pytest.mark.parametrize("name", list(NAMED_LAYERS))
def test_layers_are_named_and_checkpoints_from_before_load(name):
    """Same layers in the same order as when they were numbered (so a seed gives the same weights), and a state dict
    with the numbered keys loads (directly, through upgrade_state_dict, and as an EMA's) to the same outputs."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from roadmap.nets.legacy import legacy_keys, upgrade_state_dict
    from roadmap.nets.model import CONVNEXT_T, RESNET50

    overrides, named, legacy = NAMED_LAYERS[name]
    cfg = dataclasses.replace(RESNET50 if name == "resnet_d" else CONVNEXT_T, depths=(1, 2), width=16, num_classes=5,
                              **overrides)
    net = _randomize(RoadmapNet(cfg))
    old_key = legacy_keys(net)

    def modules(keys):
        return " ".join(dict.fromkeys(k.rsplit(".", 1)[0] for k in keys))

    assert modules(net.state_dict()) == named and modules(old_key.values()) == legacy
    old = {old_key[k]: v for k, v in net.state_dict().items()}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = net(x)
    for upgrade in (False, True):
        fresh = RoadmapNet(cfg).eval()
        fresh.load_state_dict(upgrade_state_dict(fresh, old) if upgrade else old)
        with torch.no_grad():
            assert torch.equal(fresh(x), expected)
        ema = AveragedModel(RoadmapNet(cfg), multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True).eval()
        saved = {"module." + old_key[k[len("module."):]] if k.startswith("module.") else k: v
                 for k, v in AveragedModel(net, use_buffers=True).state_dict().items()}
        ema.load_state_dict(upgrade_state_dict(ema.module, saved, "module.") if upgrade else saved)
        with torch.no_grad():
            assert torch.equal(ema(x), expected)
    assert upgrade_state_dict(net, net.state_dict()).keys() == net.state_dict().keys()
    extra = {**old, "stages.0.0.branch.9.weight": torch.zeros(1)}
    with pytest.raises(ConfigError, match=r"^state dict: unexpected key stages\.0\.0\.branch\.9\.weight \(neither"):
        upgrade_state_dict(net, extra)
    missing = {k: v for k, v in old.items() if not k.startswith("head.")}
    with pytest.raises(ConfigError, match=r"^state dict: missing key head\.fc\.bias .* load it into the RoadmapNet"):
        upgrade_state_dict(net, missing)


@pytest.mark.parametrize("name", ["resnet50", "convnext_tiny"])
def test_conversion_pairs_tensors_by_name_not_order(name, monkeypatch):
    """The source's state dict in another order converts to the same network; a tensor missing from it or one
    without a counterpart here is a one-line ConfigError naming it."""
    import random
    import re
    from collections import OrderedDict

    tv = _randomize(getattr(torchvision.models, name)(num_classes=7))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = tv(x)
    items = list(tv.state_dict().items())
    random.Random(0).shuffle(items)
    monkeypatch.setattr(tv, "state_dict", lambda: OrderedDict(items))
    ours = roadmap.from_torchvision(tv).eval()
    with torch.no_grad():
        assert (ours(x) - expected).abs().max().item() <= 1e-4
    gone = next(k for k, v in items if v.dim() > 1)
    monkeypatch.setattr(tv, "state_dict", lambda: OrderedDict((k, v) for k, v in items if k != gone))
    with pytest.raises(ConfigError, match=rf"^from_torchvision: the source network has no {re.escape(gone)} ") as e:
        roadmap.from_torchvision(tv)
    assert "\n" not in str(e.value)
    monkeypatch.setattr(tv, "state_dict", lambda: OrderedDict([*items, ("extra.weight", torch.zeros(3))]))
    with pytest.raises(ConfigError, match=r"^from_torchvision: extra\.weight \(3,\) has no counterpart"):
        roadmap.from_torchvision(tv)


def test_a_steps_parent_is_declared_once(tmp_path):
    """A roadmap gives a step's parent only where the step's file does not: left out, it is the step the file builds
    on; given, it is what the roadmap compares with (here ConvNeXt-T straight against ResNet-50)."""
    from roadmap.config import included_step

    write_user_step(tmp_path)
    (tmp_path / "roadmap").mkdir()
    (tmp_path / "roadmap" / "mine.yaml").write_text(USER_ROADMAP.replace("dw_kernel_3: {parent: separate_downsampling,",
                                                                         "dw_kernel_3: {"))
    mine = roadmap.load_roadmap("mine", [tmp_path])
    assert [(s.name, s.parent) for s in mine.steps] == [("resnet50", None), ("separate_downsampling", "resnet50"),
                                                       ("dw_kernel_3", "separate_downsampling")]
    for name in ROADMAPS:  # the shipped roadmaps say no parent twice
        steps = yaml.safe_load((CONF_DIR / "roadmap" / f"{name}.yaml").read_text())["roadmap"]["steps"]
        twice = [step for step, info in steps.items() if "parent" in info and included_step(step) == info["parent"]]
        assert twice == [], name
