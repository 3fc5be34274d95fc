"""The estimators' defaults are the shipped vector presets (configs/handwritten/<method>.yaml), and
``from_preset`` starts from any other shipped preset.  Nothing here trains: the run config an estimator
stands for is compared with the one ``viewsplit train`` reads from the same file."""
import inspect

import pytest
import yaml
from sklearn.base import clone

from viewsplit import estimators, presets
from viewsplit.config import CONFIG_DIR, load_config
from viewsplit.errors import ConfigError
from viewsplit.estimator_params import DERIVED
from viewsplit.estimators import ESTIMATORS, MRDD, DMRNet, params_of
from viewsplit.methods import get_method


def preset(dataset: str, method: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / dataset / f"{method}.yaml").read_text())


def cli_config(dataset: str, method: str, *overrides: str):
    """What `viewsplit train configs/<dataset>/<method>.yaml data.name=npz ...` builds."""
    return load_config(CONFIG_DIR / dataset / f"{method}.yaml", ["data.name=npz", *overrides])


def signature_value(value):
    return tuple(value) if isinstance(value, list) else value


def test_every_estimator_has_its_vector_preset():
    for method, cls in ESTIMATORS.items():
        assert cls.preset_path == CONFIG_DIR / "handwritten" / f"{method}.yaml"
        assert "configs/handwritten" in cls.__doc__


def test_mrdd_defaults_are_the_handwritten_preset():
    raw = preset("handwritten", "mrdd")
    model, stages = raw["model"], raw["stages"]
    sig = inspect.signature(MRDD).parameters
    params = MRDD().get_params()
    for key in ("c_dim", "v_dim", "kl_weight", "mask_ratio", "stage1_targets", "recon_reduction", "view_weights",
                "bn_recalibrate"):
        assert params[key] == sig[key].default == model[key], key
    assert (params["v_dim"], params["mask_ratio"], params["kl_weight"]) != (10, 0.7, 1.0)   # not the paper's
    # keys the preset leaves out keep the Config defaults; nested sections stay None (= the preset's section)
    config = get_method("mrdd").Config()
    for key in ("beta", "lam", "n_critic", "patch_size", "view_drop"):
        assert key not in model and params[key] == getattr(config, key), key
    assert params["consistency"] is None and params["specific"] is None and params["stages"] is None
    cfg = MRDD().run_config()
    assert cfg.model.consistency.hidden == model["consistency"]["hidden"]
    assert cfg.model.specific.hidden == model["specific"]["hidden"]
    for name, st in stages.items():
        for key in ("epochs", "batch_size", "lr"):
            assert getattr(cfg.stages[name], key) == st[key], (name, key)
    assert cfg.stages["consistency"].grad_clip is None and cfg.stages["consistency"].t_max is None
    # stage keys the preset leaves out keep the method's stage defaults
    for key in ("optimizer", "scheduler", "weight_decay", "eta_min"):
        assert getattr(cfg.stages["disentangle"], key) == get_method("mrdd").stage_defaults["disentangle"][key], key


def test_a_method_without_vector_preset_keeps_its_config_defaults(monkeypatch):
    monkeypatch.setattr(presets, "VECTOR_PRESET", "no-such-folder")
    cls = estimators.make_estimator("PaperMRDD", "mrdd", "C")
    method = get_method("mrdd")
    assert cls.preset_path is None and "MRDDConfig" in cls.__doc__
    assert cls().get_params()["mask_ratio"] == method.Config().mask_ratio
    cfg = cls().run_config().to_dict()
    assert cfg["model"] == load_config(base={"method": "mrdd"}).to_dict()["model"]
    assert {s: (st["epochs"], st["batch_size"]) for s, st in cfg["stages"].items()} == \
        {s: (st["epochs"], st["batch_size"]) for s, st in method.stage_defaults.items()}
    assert cls().run_config(500).stages["consistency"].batch_size == 500   # lowered as before


@pytest.mark.parametrize("method", sorted(ESTIMATORS))
def test_signature_defaults_are_the_preset_values(method):
    cls = ESTIMATORS[method]
    params = cls().get_params()
    derived = DERIVED.get(method, {})
    for key, value in preset("handwritten", method)["model"].items():
        if key in derived:   # "auto" follows the setting it derives from; as given, it is the preset's value
            assert params[key] == "auto" and getattr(cls().run_config().model, key) == value, key
            continue
        assert params[key] == (None if isinstance(value, dict) else signature_value(value)), key


@pytest.mark.parametrize("method", sorted(ESTIMATORS))
def test_default_estimator_and_cli_build_the_same_config(method):
    """`viewsplit train configs/handwritten/<method>.yaml data.name=npz` and ``<Estimator>()`` agree on every
    model and stage setting (and the seed); the data's size only lowers a default batch size above it."""
    est = ESTIMATORS[method]()
    cli = cli_config("handwritten", method).to_dict()
    for n in (None, 10**6):
        mine = est.run_config(n).to_dict()
        assert mine["model"] == cli["model"]
        assert mine["stages"] == cli["stages"]
        assert mine["train"]["seed"] == cli["train"]["seed"]
    # a default batch size larger than the data is lowered to the data's size; smaller ones stay
    n = 100
    small = est.run_config(n).to_dict()["stages"]
    for name, st in cli["stages"].items():
        assert small[name] == {**st, "batch_size": min(st["batch_size"], n)}
    # a batch size given explicitly is kept (the engine names it if it exceeds the data)
    assert {s["batch_size"] for s in ESTIMATORS[method](batch_size=512).run_config(n).to_dict()["stages"].values()} \
        == {512}


def test_overrides_of_the_defaults_match_cli_overrides():
    """Estimator arguments are the CLI's key=value overrides of the same preset."""
    est = MRDD(v_dim=3, consistency={"hidden": [64]}, epochs=5, stages={"disentangle": {"steps": 20}})
    cli = cli_config("handwritten", "mrdd", "model.v_dim=3", "model.consistency.hidden=[64]",
                     "stages.consistency.epochs=5", "stages.disentangle.steps=20").to_dict()
    mine = est.run_config().to_dict()
    assert mine["model"] == cli["model"] and mine["stages"] == cli["stages"]
    assert mine["model"]["consistency"]["hidden"] == [64]
    assert mine["stages"]["consistency"]["lr"] == preset("handwritten", "mrdd")["stages"]["consistency"]["lr"]


def test_from_preset_image_preset():
    raw = preset("edge_fmnist", "mrdd")
    est = MRDD.from_preset("edge_fmnist")
    assert type(est) is MRDD and not hasattr(est, "method_")
    p = est.get_params()
    assert (p["v_dim"], p["kl_weight"], p["view_drop"]) == (raw["model"]["v_dim"], raw["model"]["kl_weight"],
                                                              raw["model"]["view_drop"])
    assert p["consistency"]["image"] == raw["model"]["consistency"]["image"]
    cli = cli_config("edge_fmnist", "mrdd").to_dict()
    mine = est.run_config(10**6).to_dict()
    assert mine["model"] == cli["model"] and mine["stages"] == cli["stages"]
    assert [mine["stages"][s]["epochs"] for s in ("consistency", "disentangle")] == \
        [raw["stages"][s]["epochs"] for s in ("consistency", "disentangle")]
    # another file of the method's, by folder/file
    ref = MRDD.from_preset("edge_mnist/mrdd-reference").run_config().to_dict()
    assert ref["model"] == cli_config("edge_mnist", "mrdd-reference").to_dict()["model"]


def test_from_preset_vector_preset_is_the_default_estimator():
    for method, cls in ESTIMATORS.items():
        a, b = cls.from_preset("handwritten").run_config(), cls().run_config()
        assert a.to_dict()["model"] == b.to_dict()["model"] and a.to_dict()["stages"] == b.to_dict()["stages"], method


def test_from_preset_overrides_go_on_top_of_the_preset():
    est = MRDD.from_preset("edge_fmnist", v_dim=32, epochs=2, consistency={"channels": [8, 16]},
                           stages={"disentangle": {"epochs": 1}}, random_state=5)
    cfg = est.run_config()
    assert cfg.model.v_dim == 32 and cfg.train.seed == 5
    assert cfg.model.consistency.channels == [8, 16]
    assert cfg.model.consistency.conv_norm == preset("edge_fmnist", "mrdd")["model"]["consistency"]["conv_norm"]
    assert [s.epochs for s in cfg.stages.values()] == [2, 1]          # per-stage settings win over epochs=
    assert cfg.stages["disentangle"].batch_size == preset("edge_fmnist", "mrdd")["stages"]["disentangle"]["batch_size"]
    with pytest.raises(TypeError, match="unknown parameter"):
        MRDD.from_preset("edge_fmnist", v_dimm=3)


def test_from_preset_unknown_names_the_available_presets():
    with pytest.raises(ConfigError, match=r"preset 'nowhere'.*available: .*edge_fmnist.*handwritten") as err:
        MRDD.from_preset("nowhere")
    assert "edge_mnist/mrdd-reference" in str(err.value)
    with pytest.raises(ConfigError, match=r"preset 'coil20': no dmrnet preset.*available: edge_fmnist, handwritten"):
        DMRNet.from_preset("coil20")
    with pytest.raises(ConfigError, match="configures method 'decur', not 'mib'"):
        ESTIMATORS["mib"].from_preset("handwritten/barlow")
    for bad in ("../handwritten", "/etc/passwd", ""):
        with pytest.raises(ConfigError, match="no mrdd preset of that name"):
            MRDD.from_preset(bad)


def test_clone_and_get_params_round_trip_with_the_preset_defaults():
    for est in (MRDD(), MRDD(v_dim=3), MRDD.from_preset("edge_fmnist", epochs=2)):
        twin = clone(est)
        assert twin.get_params() == est.get_params()
        assert twin.run_config().to_dict() == est.run_config().to_dict()
        again = type(est)(**est.get_params())
        assert again.run_config().to_dict() == est.run_config().to_dict()
    est = MRDD().set_params(v_dim=4, stages={"consistency": {"epochs": 3}})
    cfg = est.run_config()
    assert cfg.model.v_dim == 4 and cfg.stages["consistency"].epochs == 3
    assert cfg.stages["disentangle"].epochs == preset("handwritten", "mrdd")["stages"]["disentangle"]["epochs"]


@pytest.mark.parametrize("source", ["default", "edge_fmnist"])
def test_params_of_stands_for_the_config(source):
    """What `load` does: params_of(cfg) rebuilds cfg (a loaded model's clone trains the same model again)."""
    cfg = (MRDD() if source == "default" else MRDD.from_preset(source)).run_config()
    rebuilt = MRDD(**params_of(cfg))
    for n in (None, 3):   # explicit batch sizes: the data's size changes nothing
        again = rebuilt.run_config(n).to_dict()
        assert {k: again[k] for k in ("model", "stages")} == {k: cfg.to_dict()[k] for k in ("model", "stages")}
    assert clone(rebuilt).run_config().to_dict() == rebuilt.run_config().to_dict()
