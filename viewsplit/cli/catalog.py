"""``viewsplit datasets``, ``methods`` and ``bench``: what is available, and methods × data sets over seeds."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any


def cmd_datasets(args: argparse.Namespace) -> int:
    import dataclasses

    from ..config import merge, parse_override
    from ..data import DATASETS, DataConfig
    from ..errors import ConfigError
    from ..typed import from_dict

    raw: dict = {"root": args.root} if args.root else {}
    for item in args.overrides:
        if not item.startswith("data."):
            raise ConfigError(f"{item!r}: viewsplit datasets only takes data.* overrides, e.g. data.root=DIR")
        raw = merge(raw, parse_override(item)["data"])
    base = from_dict(DataConfig, raw, "data")
    for key in ("root", "path"):
        given = getattr(base, key)
        if given and not Path(given).expanduser().exists():
            option = "--root" if key == "root" and given == args.root else f"data.{key}"
            raise ConfigError(f"{option}: {given}: no such folder or file")
    rows = []
    for name, info in sorted(DATASETS.items()):
        cfg = dataclasses.replace(base, name=name)
        found, where = info.locate(cfg)
        rows.append((name, info.shape, _found(found, where), where, info.summary))
    print("| name | views, shapes, samples, classes | found | where | description |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


def _found(found: bool, where: str) -> str:
    """The ``found`` column: yes / no for built-in files; what the user must give for their own data
    (``your data: data.path=FILE.npz``) or for a data set built on another (``needs data.source``)."""
    if found:
        return "yes"
    if not where.startswith("set "):
        return "no"
    need = where.removeprefix("set ").split(" (")[0]
    return f"needs {need.split()[0]}" if need.startswith("data.source") else f"your data: {need}"


def cmd_methods(args: argparse.Namespace) -> int:
    from ..config import StageConfig
    from ..methods import available_methods, get_method
    from ..typed import plain

    names = args.names or available_methods()
    defaults = plain(StageConfig())
    print("Stage keys (stages.<stage>.<key>) and their defaults: "
          + ", ".join(f"{k}={v}" for k, v in defaults.items()) + "\n")
    for name in names:
        cls = get_method(name)
        doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip().splitlines()
        print(f"{name}: {doc[0] if doc else ''}")
        for stage, over in cls.stage_defaults.items():
            print(f"  stage {stage}: " + (", ".join(f"{k}={v}" for k, v in over.items()) or "the defaults above"))
        model = _flat(plain(cls.Config())) if dataclasses.is_dataclass(cls.Config) else {}
        print("  model keys: " + (", ".join(f"{k}={v}" for k, v in model.items()) or "none"))
        stages = {st: {**defaults, **plain(over)} for st, over in cls.stage_defaults.items()}
        for line in _preset_lines(name, model, stages):
            print(line)
        print()
    return 0


def _preset_lines(method: str, model: dict, stages: dict[str, dict]) -> list[str]:
    """What a user gets: per shipped preset (``configs/<data set>/<method>.yaml``), the model and stage keys it
    sets to other values than the paper's above."""
    from ..config import CONFIG_DIR, load_config
    from ..presets import VECTOR_PRESET, preset_names
    from ..typed import plain

    names = sorted((n for n in preset_names(method) if "/" not in n), key=lambda n: n != VECTOR_PRESET)
    if not names:
        return ["  presets: none; the values above are what every run gets"]
    lines = [f"  presets: what you get (`viewsplit run <preset>/{method}`), where it differs from the values above "
             "(the paper's, or the reference code's)"]
    for preset in names:
        cfg = load_config(CONFIG_DIR / preset / f"{method}.yaml")
        who = (f" (vector data: the estimator's defaults{' and viewsplit demo' if method == 'mrdd' else ''})"
               if preset == VECTOR_PRESET else " (image data)")
        over = _flat(plain(cfg.model)) if dataclasses.is_dataclass(cfg.model) else {}
        diff = [f"{k}={v}" for k, v in over.items() if model.get(k) != v]
        lines.append(f"    {preset}{who}: model " + (", ".join(diff) or "as above"))
        for stage, scfg in cfg.stages.items():
            got = plain(scfg)
            changed = [f"{k}={v}" for k, v in got.items() if stages.get(stage, {}).get(k) != v]
            lines.append(f"      stage {stage}: " + (", ".join(changed) or "as above"))
    return lines


def _flat(d: dict, prefix: str = "") -> dict:
    """Nested keys as dotted paths: ``{"backbone": {"hidden": [64]}}`` → ``{"backbone.hidden": [64]}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import bench, markdown

    table = bench(args.methods.split(","), args.datasets.split(","), args.seeds, args.out, args.overrides)
    print(markdown(table, args.seeds))
    print(f"tables: {args.out / 'bench.md'}, {args.out / 'bench.json'}")
    return 0


def add_parsers(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The ``datasets``, ``methods`` and ``bench`` sub-commands."""
    d = sub.add_parser("datasets", help="list the built-in data sets and whether their files were found",
                       formatter_class=fmt)
    d.add_argument("--root", help="also look for data files in this folder")
    d.add_argument("overrides", nargs="*", help="data.* settings that say where files are, e.g. data.root=DIR")
    d.set_defaults(fn=cmd_datasets)

    me = sub.add_parser("methods", help="list each method's stages and config keys with their defaults",
                        formatter_class=fmt)
    me.add_argument("names", nargs="*", help="methods to show (default: all of them)")
    me.set_defaults(fn=cmd_methods)

    b = sub.add_parser("bench", help="train and evaluate methods × data sets over seeds; write a results table",
                       formatter_class=fmt)
    b.add_argument("--methods", default="mrdd,mib,decur,softcca,fae,dcca,autoencoder",
                   help="comma-separated methods (each needs configs/<data set>/<method>.yaml)")
    b.add_argument("--datasets", default="handwritten", help="comma-separated data sets")
    b.add_argument("--seeds", type=int, default=3, help="training seeds per method (train.seed = 0 … seeds-1)")
    b.add_argument("--out", type=Path, default=Path("runs") / "bench", help="benchmark folder")
    b.add_argument("overrides", nargs="*", help="key=value overrides applied to every run; METHOD:key=value "
                                                "applies to one method only, e.g. mib:model.z_dim=64")
    b.set_defaults(fn=cmd_bench)
