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
    (["stages.train.epoch=3"], r"stages.train.epoch: unknown key; valid keys of stages.train: epochs, batch_size"),
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
])
def test_config_errors_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(base=BASE, overrides=overrides)


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
