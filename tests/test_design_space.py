"""roadmap.explore.analysis on synthetic populations with planted effects."""

import numpy as np
import pandas as pd
import pytest

from helpers import table_rows
from roadmap.explore import analysis as ds

SWITCHES = ["stem", "block", "norm", "kernel_size", "layer_scale"]


def population(n=200, seed=0, interaction=0.0, kernel7=0.0):
    """n networks, one seed each: top1 = 80 + 3 [block inverted] + 0.5 gmacs + noise(sd 0.5)
    (+ `interaction` [stem patchify and norm layer]) (+ `kernel7` [kernel_size 7])."""
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"id": [f"net{i:03d}" for i in range(n)], "seed": 0,
                      "stem": rng.choice(["resnet", "patchify"], n), "block": rng.choice(["bottleneck", "inverted"], n),
                      "norm": rng.choice(["batch", "layer"], n), "kernel_size": rng.choice([3, 5, 7], n),
                      "layer_scale": rng.choice(np.array([None, 1e-6], dtype=object), n),
                      "gmacs": rng.uniform(1.0, 5.0, n)})
    d["params"] = (d.gmacs * 5e6).astype(int)
    d["top1"] = (80 + 3.0 * (d.block == "inverted") + 0.5 * d.gmacs + rng.normal(0, 0.5, n)
                 + interaction * ((d.stem == "patchify") & (d.norm == "layer")) + kernel7 * (d.kernel_size == 7))
    return d


@pytest.fixture(scope="module")
def nets():
    return ds.network_means(population(), SWITCHES)


def test_network_means_averages_seeds():
    samples = pd.DataFrame({"id": ["a", "a", "b", "b", "c"], "seed": [0, 1, 0, 1, 0],
                            "top1": [70.0, 72.0, 60.0, 61.0, 50.0], "gmacs": [1.0, 1.0, 2.0, 2.0, 3.0],
                            "params": [10, 10, 20, 20, 30], "kernel_size": [7, 7, 3, 3, 5],
                            "layer_scale": [1e-6, 1e-6, None, None, 1e-6]})
    m = ds.network_means(samples).set_index("id")
    assert m.loc["a", "top1"] == pytest.approx(71.0) and m.loc["b", "top1"] == pytest.approx(60.5)
    assert m.seeds.to_dict() == {"a": 2, "b": 2, "c": 1}
    assert m.loc["a", "error"] == pytest.approx(29.0)
    assert m.loc["b", "layer_scale"] == "none" and m.loc["a", "kernel_size"] == "7"
    samples.loc[1, "kernel_size"] = 5
    with pytest.raises(ValueError, match="kernel_size"):
        ds.network_means(samples)


def test_bad_input_rejected(nets):
    with pytest.raises(ValueError, match="empty"):
        ds.network_means(pd.DataFrame())
    with pytest.raises(ValueError, match="missing"):
        ds.main_effects(nets, [*SWITCHES, "act"])


def test_edf_monotone_from_zero_to_one():
    values = np.random.default_rng(1).normal(20, 3, 1001)
    x, f = ds.edf(values)
    assert np.all(np.diff(x) > 0) and np.all(np.diff(f) >= 0)
    assert f[0] == pytest.approx(1 / 1001) and f[-1] == 1.0
    assert f[np.searchsorted(x, np.median(values))] == pytest.approx(0.5, abs=0.01)


def test_main_effects_recover_planted_block(nets):
    effects = ds.main_effects(nets, SWITCHES)
    assert set(effects.switch) == set(SWITCHES) and len(effects) == 6  # 1 + 1 + 1 + 2 + 1 non-reference levels
    block = effects[effects.switch == "block"].iloc[0]
    counts = nets.block.value_counts()
    assert block.reference == counts.idxmax() and block.n == counts[block.level]
    planted = 3.0 if block.level == "inverted" else -3.0
    assert block.ci_low < planted < block.ci_high
    assert block.verdict == ("better" if planted > 0 else "worse") and block.p_value < 1e-6
    others = effects[effects.switch != "block"]
    assert ((others.ci_low < 0) & (others.ci_high > 0)).all(), others
    assert (others.verdict == "unresolved").all()
    assert set(effects[effects.switch == "layer_scale"][["level", "reference"]].values.ravel()) == {"none", "1e-06"}


def test_too_small_population_raises():
    small = ds.network_means(population(n=6), SWITCHES)
    with pytest.raises(ValueError, match=r"at least 8 networks") as err:
        ds.main_effects(small, SWITCHES)
    assert "\n" not in str(err.value)


def test_interactions_planted_pair_ranks_first(nets):
    inter = ds.interactions(ds.network_means(population(seed=2, interaction=2.0), SWITCHES), SWITCHES)
    assert list(inter.columns) == ["a", "b", "f", "p_value", "df"] and len(inter) == 5
    assert (inter.a[0], inter.b[0]) == ("stem", "norm") and inter.p_value[0] < 1e-3 and inter.df[0] == 1
    assert inter.p_value.is_monotonic_increasing
    assert ds.interactions(nets, SWITCHES).p_value.min() > 1e-3  # nothing planted, nothing found
    # one switch with two levels: no pairs
    assert ds.interactions(nets, ["block"]).empty


def test_top_networks(nets):
    top = ds.top_networks(nets, SWITCHES, k=7)
    assert list(top.columns) == ["id", *SWITCHES, "params", "gmacs", "top1", "seeds"]
    assert top.top1.is_monotonic_decreasing and len(top) == 7
    assert set(top.id) == set(nets.nlargest(7, "top1").id)


def test_disagreements():
    nets = ds.network_means(population(seed=3, kernel7=1.5), SWITCHES)
    choices = {"block": "bottleneck", "kernel_size": 7, "layer_scale": 1e-6, "not_a_switch": 1}
    table = ds.disagreements(nets, SWITCHES, choices).set_index("switch")
    assert list(table.index) == ["block", "kernel_size", "layer_scale"]
    assert table.loc["block", "verdict"] == "disagrees" and table.loc["block", "population_best"] == "inverted"
    assert table.loc["block", "ci_low"] < -3 < table.loc["block", "ci_high"] < 0
    assert table.loc["kernel_size", "verdict"] == "agrees" and table.loc["kernel_size", "roadmap"] == "7"
    assert table.loc["layer_scale", "verdict"] in {"agrees", "unresolved"}
    # a choice that is neither the reference nor (necessarily) the best: kernel 5 vs the planted 7
    k5 = ds.disagreements(nets, SWITCHES, {"kernel_size": 5}).iloc[0]
    assert k5.population_best == "7" and k5.verdict == "disagrees" and k5.ci_low < -1.5 < k5.ci_high


def test_edf_figure(nets, tmp_path):
    fig = ds.make_edf_figure(nets, SWITCHES)
    assert len(fig.axes) == 1 + len(SWITCHES)
    assert len(fig.axes[0].get_lines()) == 1 and "n=200" in fig.axes[0].get_legend().get_texts()[0].get_text()
    assert len(fig.axes[4].get_lines()) == 3  # kernel_size: 3, 5, 7
    png, pdf = ds.edf_figure(nets, SWITCHES, tmp_path / "sub" / "edf", title="population")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert pdf.read_bytes()[:4] == b"%PDF" and pdf.stat().st_size > 5_000


def test_markdown(nets):
    effects = ds.main_effects(nets, SWITCHES)
    text = ds.markdown(nets, SWITCHES, effects, ds.interactions(nets, SWITCHES), ds.top_networks(nets, SWITCHES, 3),
                       ds.disagreements(nets, SWITCHES, {"block": "bottleneck", "stem": "patchify"}))
    choices = table_rows(text.split("### Roadmap's choices vs the population")[1], "switch")
    assert "200 networks, 200 runs" in text and "disagrees" in [r["verdict"] for r in choices]
    assert [r["id"][:3] for r in table_rows(text, "id")] == ["net"] * 3 and "### Interactions" in text
    assert "inverted" in text and "95% CIs" in text
