"""Typed configs: YAML + key=value overrides; unknown keys, wrong types and impossible values are errors."""
import pytest
import yaml

from viewsplit.config import load_config, parse_override
from viewsplit.errors import ConfigError

BASE = {"method": "autoencoder", "data": {"name": "handwritten"}}


def test_defaults_overrides_and_roundtrip(tmp_path):
    cfg = load_config(base=BASE, overrides=["stages.train.epochs=3", "stages.train.lr=1e-3", "model.code_dim=8",
                                            "model.backbone.hidden=[64,32]", "eval.probes=[logreg]",
                                            "train.threads=none", "stages.train.betas=[0.9,0.95]"])
    assert cfg.stages["train"].epochs == 3 and cfg.stages["train"].lr == 1e-3 and cfg.model.code_dim == 8
    assert cfg.model.backbone.hidden == [64, 32] and cfg.eval.probes == ["logreg"] and cfg.train.threads is None
    assert cfg.stages["train"].betas == (0.9, 0.95)
    cfg.save(tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again.to_dict() == cfg.to_dict()


def test_parse_override():
    assert parse_override("a.b=1") == {"a": {"b": 1}}
    assert parse_override("a=[x, y]") == {"a": ["x", "y"]}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("novalue")


@pytest.mark.parametrize("overrides, match", [
    (["stages.train.epoch=3"], r"stages.train.epoch: unknown key; valid keys of stages.train: epochs, steps, "
                               r"min_steps, batch_size"),
    (["model.cod_dim=3"], r"model.cod_dim: unknown key; valid keys of model: code_dim, backbone"),
    (["data.nam=x"], r"data.nam: unknown key; valid keys of data: name, root"),
    (["stages.train.epochs=ten"], r"stages.train.epochs: expected an integer, got 'ten'"),
    (["stages.train.lr=fast"], r"stages.train.lr: expected a number"),
    (["stages.train.lr=-1"], r"stages.train.lr: must be > 0"),
    (["stages.train.scheduler=consine"],
     r"stages.train.scheduler: 'consine' is not one of \['none', 'cosine', 'step'\]"),
    (["stages.warmup.epochs=1"],
     r"stages: unknown stage\(s\) \['warmup'\] for method 'autoencoder'; its stages are \['train'\]"),
    (["data.name=mnist"], r"data.name: unknown data set 'mnist'; choose one of"),
    (["data.missing_rate=1.5"], r"data.missing_rate: must lie in \[0, 1\]"),
    (["model.code_dim=0"], r"model.code_dim: must be > 0"),
    (["train.deterministic=maybe"], r"train.deterministic: expected true or false"),
    (["eval.probes=[logreg,forest]"], r"eval.probes: 'forest' is not one of"),
    (["method=nope"], r"method: unknown method 'nope'; available: .*autoencoder"),
    (["trian.seed=1"], r"unknown config section\(s\) \['trian'\]"),
    (["stages.train.betas=[0.9]"], r"stages.train.betas: expected 2 values"),
    (["stages.train.steps=-5"], r"stages.train.steps: must be >= 0, got -5"),
    (["stages.train.steps=many"], r"stages.train.steps: expected an integer, got 'many'"),
    (["stages.train.min_steps=-1"], r"stages.train.min_steps: must be >= 0, got -1"),
    (["stages.train.epochs=-2"], r"stages.train.epochs: must be >= 0, got -2"),
    (["stages.train.epochs=null"], r"stages.train: give the stage's length as epochs or as steps, not neither"),
])
def test_config_errors_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(base=BASE, overrides=overrides)


def test_stage_length_is_epochs_or_steps_and_later_layers_replace_it(tmp_path):
    """One layer (a file, an override, an estimator argument) may not give both epochs and steps; a later layer
    that gives either replaces the earlier length, min_steps included; min_steps alone keeps the epochs."""
    with pytest.raises(ConfigError, match=r"stages.train: give the stage's length as epochs or as steps, not both "
                                          r"\(epochs=3, steps=50\)"):
        load_config(base=BASE, overrides=["stages.train={epochs: 3, steps: 50}"])
    with pytest.raises(ConfigError, match=r"stages.train.min_steps: only raises epochs; with steps=50"):
        load_config(base=BASE, overrides=["stages.train={steps: 50, min_steps: 100}"])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "stages": {"train": {"epochs": 40, "min_steps": 1500}}}))
    st = load_config(path).stages["train"]
    assert (st.epochs, st.steps, st.min_steps) == (40, None, 1500)
    st = load_config(path, ["stages.train.epochs=2"]).stages["train"]       # a smoke run: exactly 2 epochs
    assert (st.epochs, st.steps, st.min_steps) == (2, None, 0)
    st = load_config(path, ["stages.train.steps=300"]).stages["train"]
    assert (st.epochs, st.steps, st.min_steps) == (None, 300, 0)
    st = load_config(path, ["stages.train.min_steps=10"]).stages["train"]
    assert (st.epochs, st.steps, st.min_steps) == (40, None, 10)
    # over the method's default epochs (autoencoder: 30), and back through a saved config
    cfg = load_config(base=BASE, overrides=["stages.train.steps=7"])
    assert (cfg.stages["train"].epochs, cfg.stages["train"].steps) == (None, 7)
    cfg.save(tmp_path / "s.yaml")
    assert load_config(tmp_path / "s.yaml").to_dict() == cfg.to_dict()
    # overrides apply in order: the last unit given wins
    st = load_config(base=BASE, overrides=["stages.train.steps=7", "stages.train.epochs=4"]).stages["train"]
    assert (st.epochs, st.steps) == (4, None)


@pytest.mark.parametrize("stage, batches, expected", [
    ({"epochs": 2}, 4, (2, 8)),
    ({"epochs": 2, "min_steps": 10}, 4, (3, 12)),     # raised to whole epochs: ⌈10 / 4⌉
    ({"epochs": 5, "min_steps": 10}, 4, (5, 20)),     # enough steps already: unchanged
    ({"epochs": 40, "min_steps": 1500}, 12, (125, 1500)),
    ({"epochs": 40, "min_steps": 1500}, 469, (40, 18760)),
    ({"epochs": None, "steps": 10}, 4, (3, 10)),      # the last epoch cut short after 2 of its 4 batches
    ({"epochs": None, "steps": 8}, 4, (2, 8)),
    ({"epochs": None, "steps": 0}, 4, (0, 0)),
    ({"epochs": 0, "min_steps": 0}, 4, (0, 0)),
])
def test_stage_length_known_answers(stage, batches, expected):
    from viewsplit.config import StageConfig

    st = StageConfig(**stage)
    st.validate("stages.x")
    assert st.length(batches) == expected


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("method: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "nomethod.yaml").write_text(yaml.safe_dump({"data": {"name": "handwritten"}}))
    with pytest.raises(ConfigError, match="method: missing"):
        load_config(tmp_path / "nomethod.yaml")


def test_shipped_configs_are_valid():
    from viewsplit.config import CONFIG_DIR

    paths = sorted(CONFIG_DIR.glob("*/*.yaml"))
    assert paths
    for p in paths:
        load_config(p)
