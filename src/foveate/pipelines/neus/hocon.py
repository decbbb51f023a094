"""NeuS's and RNb-NeuS's own HOCON ``.conf`` files (``confs/wmask.conf``, ``wmask_rnb.conf``) as foveate configs.

``--config FILE.conf`` (or the runner's ``--conf``) reads one: every key NeuS's ``exp_runner.py``
reads maps onto a field of :class:`~foveate.pipelines.neus.config.NeuSConfig`, whose defaults are
``wmask.conf``'s, so a file and the YAML holding the same values resolve to the same config.
Keys foveate has no use for (``general.base_exp_dir``, ``recording``: runs go to
``runs/neus/NAME`` and record their own code) are ignored; a key it does not know, a value of
the wrong type or a shape foveate cannot build is an error naming the key and the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from foveate.train import apply_changes

from .config import NeuSConfig

__all__ = ["CONF_SUFFIX", "read_neus_conf"]

CONF_SUFFIX = ".conf"
CASE_NAME = "CASE_NAME"
"""The placeholder NeuS's files use for the scene's name (``--case``)."""

_SECTIONS: dict[str, dict[str, str | None]] = {
    "general": {"base_exp_dir": None, "recording": None},
    "dataset": {
        "data_dir": "scene",
        "render_cameras_name": None,
        "object_cameras_name": None,
        "normal_dir": None,
        "albedo_dir": None,
        "mask_dir": None,
        "camera_outside_sphere": None,
        "scale_mat_scale": None,
    },
    "train": {
        "learning_rate": "optim__lr",
        "learning_rate_alpha": "optim__final_lr_fraction",
        "end_iter": "train__steps",
        "warm_up_iter": "loss__warm_up_iter",
        "batch_size": "train__batch_size",
        "validate_resolution_level": "validate_resolution_level",
        "warm_up_end": "optim__warmup_steps",
        "anneal_end": "loss__anneal_end",
        "use_white_bkgd": "loss__white_background",
        "save_freq": "train__checkpoint_every",
        "val_freq": "train__full_validate_every",
        "val_mesh_freq": "train__validate_every",
        "report_freq": "train__log_every",
        "igr_weight": "loss__igr_weight",
        "mask_weight": "loss__mask_weight",
    },
    "model.sdf_network": {
        "d_out": None,
        "d_in": None,
        "d_hidden": "sdf__hidden",
        "n_layers": "sdf__layers",
        "skip_in": "sdf__skip_in",
        "multires": "sdf__multires",
        "bias": "sdf__bias",
        "scale": "sdf__scale",
        "geometric_init": "sdf__geometric_init",
        "weight_norm": "sdf__weight_norm",
        "inside_outside": "sdf__inside_outside",
    },
    "model.variance_network": {"init_val": "sdf__variance_init"},
    "model.rendering_network": {
        "d_feature": None,
        "mode": "color__mode",
        "d_in": None,
        "d_out": None,
        "d_hidden": "color__hidden",
        "n_layers": "color__layers",
        "weight_norm": "color__weight_norm",
        "multires_view": "color__view_degree",
        "squeeze_out": None,
    },
    "model.nerf": {
        "D": "background__layers",
        "d_in": None,
        "d_in_view": None,
        "W": "background__hidden",
        "multires": "background__multires",
        "multires_view": "background__multires_view",
        "output_ch": None,
        "skips": None,
        "use_viewdirs": None,
    },
    "model.neus_renderer": {
        "n_samples": "render__n_samples",
        "n_importance": "render__n_importance",
        "n_outside": "render__n_outside",
        "up_sample_steps": "render__up_sample_steps",
        "perturb": "render__perturb",
    },
}
"""Each section's keys and the config field each sets (None: checked or ignored, set nowhere)."""

_FIXED: dict[tuple[str, str], Any] = {
    ("model.sdf_network", "d_in"): 3,
    ("model.rendering_network", "d_out"): 3,
    ("model.rendering_network", "squeeze_out"): True,
    ("model.nerf", "d_in"): 4,
    ("model.nerf", "d_in_view"): 3,
    ("model.nerf", "output_ch"): 4,
    ("model.nerf", "skips"): [4],
    ("model.nerf", "use_viewdirs"): True,
}
"""Values NeuS's files always hold, and foveate's networks assume."""


def read_neus_conf(path: str | Path, case: str | None = None) -> NeuSConfig:
    """The config a NeuS / RNb-NeuS ``.conf`` file describes, over NeuS's defaults.

    Args:
        path: the HOCON file.
        case: replaces ``CASE_NAME`` in it (NeuS's ``--case``); without it, a ``data_dir``
            holding the placeholder leaves the scene unset (give ``--scene``).
    """
    try:
        from pyhocon import ConfigFactory, ConfigTree
        from pyhocon.exceptions import ConfigException
    except ImportError as error:
        raise ImportError("reading NeuS's .conf files needs pyhocon: pip install 'foveate[neus]'") from error
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text()
    if case is not None:
        text = text.replace(CASE_NAME, case)
    try:
        tree = ConfigFactory.parse_string(text)
    except (ConfigException, Exception) as error:  # pyparsing raises its own exceptions on bad syntax
        raise ValueError(f"{path}: not a valid HOCON file ({error})") from error
    data = _plain(tree, ConfigTree)
    unknown_sections = sorted(set(data) - {"general", "dataset", "train", "model"})
    if unknown_sections:
        raise ValueError(f"{path}: unknown section(s) {unknown_sections}")
    unknown_models = sorted(set(data.get("model", {})) - {s.split(".")[1] for s in _SECTIONS if "." in s})
    if unknown_models:
        raise ValueError(f"{path}: unknown model section(s) {unknown_models}")
    changes: dict[str, Any] = {}
    for section, keys in _SECTIONS.items():
        values = _lookup(data, section)
        for key, value in values.items():
            where = f"{path}: {section}.{key}"
            if key not in keys:
                raise ValueError(f"{where}: unknown key")
            if (section, key) in _FIXED and value != _FIXED[section, key]:
                raise ValueError(f"{where}: foveate supports {_FIXED[section, key]!r} only, got {value!r}")
            if keys[key] is not None:
                changes[keys[key]] = _typed(value, keys[key], where)
    changes.update(_derived(data, path))
    return apply_changes(NeuSConfig(), changes)


def _derived(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Fields that follow from several keys: the mode, the scene, the feature width."""
    changes: dict[str, Any] = {}
    dataset, train = _lookup(data, "dataset"), _lookup(data, "train")
    if "normal_dir" in dataset or "warm_up_iter" in train:
        changes["mode"] = "rnb"
        if dataset.get("albedo_dir", "") == "":  # RNb-NeuS's default: no albedo maps
            changes["no_albedo"] = True
        for key, standard in (("normal_dir", "normal"), ("albedo_dir", "albedo"), ("mask_dir", "mask")):
            if dataset.get(key, standard) not in (standard, ""):
                raise ValueError(f"{path}: dataset.{key}: foveate reads '{standard}/' only, got {dataset[key]!r}")
    if "data_dir" in dataset:
        scene = str(dataset["data_dir"])
        changes["scene"] = "" if CASE_NAME in scene else scene.rstrip("/")
    sdf, color = _lookup(data, "model.sdf_network"), _lookup(data, "model.rendering_network")
    if "d_out" in sdf:
        changes["sdf__features"] = _typed(sdf["d_out"], "d_out", f"{path}: model.sdf_network.d_out") - 1
    features = changes.get("sdf__features", NeuSConfig().sdf.features)
    if "d_feature" in color and color["d_feature"] != features:
        raise ValueError(
            f"{path}: model.rendering_network.d_feature ({color['d_feature']}) must equal "
            f"model.sdf_network.d_out - 1 ({features})"
        )
    return changes


def _lookup(data: Mapping[str, Any], dotted: str) -> Mapping[str, Any]:
    value: Any = data
    for part in dotted.split("."):
        value = value.get(part, {}) if isinstance(value, Mapping) else {}
    return value


def _plain(value: Any, tree_type: type) -> Any:
    """pyhocon's trees as plain dicts and lists."""
    if isinstance(value, tree_type):
        return {key: _plain(value[key], tree_type) for key in value}
    if isinstance(value, list):
        return [_plain(item, tree_type) for item in value]
    return value


def _typed(value: Any, field: str, where: str) -> Any:
    """``value`` as the type the config field holds: ints, floats, bools, strings, tuples of ints."""
    defaults = NeuSConfig()
    target: Any = defaults
    for part in field.split("__"):
        target = getattr(target, part, None) if target is not None else None
    if field == "render__perturb":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return value > 0
    if isinstance(target, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(target, int) and field != "d_out":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if field == "d_out":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}: expected a positive integer, got {value!r}")
        return value
    if isinstance(target, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if isinstance(target, tuple):
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{where}: expected a list of integers, got {value!r}")
        return tuple(value)
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string, got {value!r}")
    return value
