"""Every value a user can set is checked when the run's config is built: one line naming the key, exit 2, and no
run directory written. The table is made from the typed settings themselves, so a new field is covered too."""

import dataclasses

import pytest

from roadmap import settings as S
from roadmap.errors import ConfigError

from helpers import TINY, run_here

SECTIONS = {  # section -> (its class, the overrides that give it every optional key)
    "train": (S.TrainConfig, []),
    "data": (S.DataConfig, []),
    "recipe": (S.RecipeConfig, []),
    "scale": (S.ScaleConfig, []),
    "logger": (S.LoggerConfig, ["logger=wandb"]),
    "explore": (S.ExploreConfig, ["+explore=random"]),
}
DATASET_OF = {"eval_crop": "imagefolder", "decode": "imagefolder", "bad_images": "imagefolder",
              "download": "fashion_mnist"}  # keys the synthetic dataset of TINY does not have: where they are


def bad_values(r: S.Rule) -> list[str]:
    """Override values (Hydra syntax) that the rule must refuse."""
    if r.kind == "choice":
        return ["nonsense"]
    if r.kind == "bool":
        return ["maybe"]
    if r.kind == "str":
        return ["5"]
    if r.kind == "randaugment":
        return ["{num_ops:-1,magnitude:9}", "{num_ops:2,magnitude:99}"]
    if r.kind == "budget":
        return ["-1", "cheap"]
    if r.kind in ("numbers", "fractions"):
        return ["abc", "[0.5,0.2]" if r.kind == "fractions" else "[abc]"]
    out = ["abc"]
    if r.low is not None:
        out.append(str(r.low if r.low_open else r.low - 1))
    if r.high is not None:
        out.append(str(r.high if r.high_open else r.high + 1))
    return out


def cases():
    for section, (cls, base) in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.name == "name" and section in ("data", "recipe", "scale", "logger", "explore"):
                continue  # a config group's own name: choosing another is `data=...`, checked by Hydra
            dataset = DATASET_OF.get(f.name) if section == "data" else None
            extra = [f"data={dataset}", "data.root=/nowhere"] if dataset else []
            for value in bad_values(f.metadata["rule"]):
                yield pytest.param(section, f.name, value, [*base, *extra], id=f"{section}.{f.name}={value}")
    for value in ("abc", "-1", "1.5"):
        yield pytest.param(None, "seed", value, [], id=f"seed={value}")


@pytest.mark.parametrize("section, key, value, base", list(cases()))
def test_every_bad_value_is_one_line_and_writes_nothing(section, key, value, base, tmp_path, capsys):
    name = f"{section}.{key}" if section else key
    tiny = [a for a in TINY if not a.startswith("data")] if any(a.startswith("data=") for a in base) else TINY
    args = ["+step=gelu", *tiny, *base, f"{name}={value}"]
    code, out, err = run_here(*args, runs_root=tmp_path, capsys=capsys, precheck=False)  # (tested below with it)
    lines = err.strip().splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith(f"error: {name}="), lines
    assert "must be" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_values_from_the_issue_through_the_command_line(tmp_path, capsys):
    """What `python run.py` does with them (test_train's test_bad_input_from_a_fresh_interpreter runs the script)."""
    for arg, message in (("seed=abc", "error: seed='abc': must be an integer >= 0"),
                         ("scale.epochs=x", "error: scale.epochs='x': must be an integer >= 1")):
        code, _, err = run_here("+step=gelu", *TINY, arg, runs_root=tmp_path, capsys=capsys)
        assert code == 2 and err.strip() == message, err
        assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_good_configs_of_every_roadmap_and_scale_validate():
    from roadmap.config import compose, load_roadmap, validate

    for roadmap in ("convnext_t", "convnext_b", "bag_of_tricks"):
        for step in load_roadmap(roadmap).names():
            s = validate(compose([f"+step={step}", f"roadmap={roadmap}"]))
            assert s.train.epochs >= 1 and s.data.resolution == 32 and s.recipe.lr > 0
    for scale, extra in (("cifar", []), ("imagenette", ["data.root=/data"]), ("imagenet", ["data.root=/data"])):
        s = validate(compose(["+step=mixup", "roadmap=bag_of_tricks", f"scale={scale}", *extra]))
        assert s.scale.name == scale and s.data.kind == ("tensor" if scale == "cifar" else "folder")
    s = validate(compose(["+step=gelu"]))
    assert (s.train.epochs, s.train.batch_size, s.data.name, s.recipe.randaugment) == (2, 256, "fashion_mnist", None)
    modern = validate(compose(["+step=gelu", "scale=cifar"])).recipe
    assert modern.randaugment == S.RandAugment(num_ops=2, magnitude=9) and modern.betas == (0.9, 0.999)


@pytest.mark.parametrize("arg, message", [
    ("recipe.lr=abc", "error: recipe.lr='abc': must be a number > 0"),
    ("recipe.warmup=abc", "error: recipe.warmup='abc': must be a number in [0, 1)"),
    ("kind=ablated", "error: kind='ablated': must be one of roadmap, isolated, leave_one_out, explore"),
    ("kind=explore", "error: kind=explore: needs +explore=... (the exploration's settings)")])
def test_values_from_the_issue_in_process(arg, message, tmp_path, capsys):
    code, _, err = run_here("+step=gelu", *TINY, arg, runs_root=tmp_path, capsys=capsys, precheck=False)
    assert code == 2 and err.strip() == message and list(tmp_path.iterdir()) == []


def test_rules_name_the_key_and_refuse_unknown_keys():
    with pytest.raises(ConfigError, match=r"^train\.epochs=True: must be an integer >= 1$"):
        S.TrainConfig(epochs=True, batch_size=8)
    with pytest.raises(ConfigError, match=r"^train\.colour: unknown key; known keys: batch_size, "):
        S.TrainConfig.from_dict({"epochs": 1, "batch_size": 8, "colour": "red"})
    with pytest.raises(ConfigError, match=r"^data\.root is required for data=imagefolder"):
        S.DataConfig(name="imagefolder", kind="folder", num_classes=10, resolution=64, mean=[0.5], std=[0.5],
                     root="???")
    with pytest.raises(ConfigError, match=r"^data\.mean has 3 values and data\.std 1"):
        S.DataConfig(name="x", kind="tensor", num_classes=10, resolution=32, mean=[0.5] * 3, std=[0.5])
    assert S.TrainConfig(epochs=1, batch_size=8, channels_last=True).channels_last is True


def test_a_number_given_as_an_integer_is_a_float():
    """recipe.mixup=2 (Hydra gives an int) passed the check and stopped training with torch's "dirichlet not
    implemented for 'Long'"."""
    from roadmap.config import compose, validate

    recipe = validate(compose(["+step=gelu", "recipe.mixup=2", "recipe.cutmix=1", "recipe.lr=1",
                               "recipe.betas=[0,0]"])).recipe  # betas: torch's "both floats or both Tensors"
    assert (recipe.mixup, recipe.cutmix, recipe.lr, recipe.betas) == (2.0, 1.0, 1.0, (0.0, 0.0))
    assert all(type(v) is float for v in (recipe.mixup, recipe.cutmix, recipe.lr, *recipe.betas))


BAD_COMMAND_LINES = [
    (["+step=gelu", "-m", "seed=0,1"], "-m comes between the overrides +step=gelu and seed=0,1: flags go before or "
                                       "after all of them (python run.py -m ... +step=gelu ... seed=0,1)"),
    (["+step=gelu", "--cfg", "job", "seed=1"], "--cfg comes between the overrides +step=gelu and seed=1: flags go "
                                               "before or after all of them (python run.py --cfg ... +step=gelu ... "
                                               "seed=1)"),
    (["--bogus", "+step=gelu"], "--bogus: no flag of run.py (its flags are Hydra's: python run.py --help)"),
    (["+step=gelu", "seed=0,1"], "seed=0,1: several values are a sweep: add -m (python run.py -m ... seed=0,1); a "
                                 "list is written seed=[a,b]"),
    (["+step=glob(*)", "--cfg", "job"], "+step=glob(*): several values are a sweep: add -m (python run.py -m ... "
                                        "+step=glob(*)); a list is written +step=[a,b]"),
]


@pytest.mark.parametrize("args, message", BAD_COMMAND_LINES, ids=[" ".join(a) for a, _ in BAD_COMMAND_LINES])
def test_flags_between_overrides_and_sweeps_without_m_are_one_line(args, message, tmp_path, monkeypatch, capsys):
    """Hydra printed its 8-line usage block for a flag it does not know or one between overrides, and its 5-line
    'Ambiguous value' (exit 1) for a sweep's values without -m."""
    from helpers import _entry

    monkeypatch.chdir(tmp_path)  # runs_root: runs, here
    with pytest.raises(SystemExit) as e:
        _entry().precheck(args)
    assert e.value.code == 2
    assert capsys.readouterr() == ("", f"error: {message}\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["+step=gelu", "seed=0,1", "RUNS", "-m"], ["-m", "+step=gelu", "seed=0,1", "RUNS"],
                                  ["--cfg", "job", "+step=gelu", "RUNS"], ["+step=gelu", "--help", "seed=1"]])
def test_flags_before_or_after_all_overrides_pass_the_precheck(args, tmp_path, capsys):
    from helpers import _entry

    _entry().precheck([f"runs_root={tmp_path / 'runs'}" if a == "RUNS" else a for a in args])  # no SystemExit
    assert capsys.readouterr() == ("", "")
