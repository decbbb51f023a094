import pytest
import yaml

from foveate.pipelines.neus import NeuSConfig, read_neus_conf
from foveate.train.config import config_to_dict, load_config_yaml

NEUS_CONF = """
general {
    base_exp_dir = ./exp/CASE_NAME/wmask
    recording = [ ./, ./models ]
}
dataset {
    data_dir = ./public_data/CASE_NAME/
    render_cameras_name = cameras_sphere.npz
    object_cameras_name = cameras_sphere.npz
}
train {
    learning_rate = 1e-3
    learning_rate_alpha = 0.1
    end_iter = 1000
    batch_size = 256
    validate_resolution_level = 2
    warm_up_end = 50
    anneal_end = 200
    use_white_bkgd = True
    save_freq = 100
    val_freq = 250
    val_mesh_freq = 500
    report_freq = 10
    igr_weight = 0.2
    mask_weight = 0.0
}
model {
    nerf {
        D = 4, d_in = 4, d_in_view = 3, W = 64, multires = 6, multires_view = 2,
        output_ch = 4, skips = [4], use_viewdirs = True
    }
    sdf_network {
        d_out = 129
        d_in = 3
        d_hidden = 128
        n_layers = 6
        skip_in = [3]
        multires = 4
        bias = 0.6
        scale = 1.0
        geometric_init = True
        weight_norm = True
    }
    variance_network { init_val = 0.25 }
    rendering_network {
        d_feature = 128
        mode = idr
        d_in = 9
        d_out = 3
        d_hidden = 128
        n_layers = 2
        weight_norm = True
        multires_view = 3
        squeeze_out = True
    }
    neus_renderer {
        n_samples = 32
        n_importance = 32
        n_outside = 16
        up_sample_steps = 2   # comments are fine
        perturb = 1.0
    }
}
"""

SAME_AS_YAML = """
scene: ./public_data/bunny
color: {mode: idr, hidden: 128, layers: 2, view_degree: 3}
sdf: {hidden: 128, layers: 6, skip_in: [3], multires: 4, bias: 0.6, features: 128, variance_init: 0.25}
background: {layers: 4, hidden: 64, multires: 6, multires_view: 2}
render: {n_samples: 32, n_importance: 32, n_outside: 16, up_sample_steps: 2, perturb: true}
loss: {igr_weight: 0.2, mask_weight: 0.0, anneal_end: 200, white_background: true}
validate_resolution_level: 2
train:
  {steps: 1000, batch_size: 256, checkpoint_every: 100, full_validate_every: 250, validate_every: 500, log_every: 10}
optim: {lr: 0.001, final_lr_fraction: 0.1, warmup_steps: 50}
"""


def test_a_neus_conf_file_and_the_same_values_in_yaml_resolve_to_the_same_config(tmp_path):
    conf = tmp_path / "wmask.conf"
    conf.write_text(NEUS_CONF)
    partial = tmp_path / "same.yaml"
    partial.write_text(SAME_AS_YAML)
    from_hocon = read_neus_conf(conf, case="bunny")
    from_yaml = load_config_yaml(NeuSConfig, partial)
    assert config_to_dict(from_hocon) == config_to_dict(from_yaml)
    assert from_hocon.sdf.features == 128 and from_hocon.render.n_outside == 16 and from_hocon.mode == "rgb"


def test_neus_defaults_are_wmask_conf(tmp_path):
    conf = tmp_path / "empty.conf"
    conf.write_text("train { end_iter = 300000 }")
    assert config_to_dict(read_neus_conf(conf)) == config_to_dict(NeuSConfig())


def test_an_rnb_conf_sets_rnb_mode_and_no_albedo_without_an_albedo_dir(tmp_path):
    conf = tmp_path / "womask_rnb_noalbedo.conf"
    conf.write_text(
        "dataset { data_dir = ./data/CASE_NAME/, normal_dir = normal, render_cameras_name = cameras.npz }\n"
        "train { warm_up_iter = 2000, mask_weight = 0 }"
    )
    config = read_neus_conf(conf)
    assert config.mode == "rnb" and config.no_albedo and config.loss.warm_up_iter == 2000
    assert config.scene == ""  # CASE_NAME without --case: the scene comes from --scene
    with_albedo = tmp_path / "wmask_rnb.conf"
    with_albedo.write_text("dataset { normal_dir = normal, albedo_dir = albedo }")
    assert not read_neus_conf(with_albedo).no_albedo


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train { learning_rat = 1e-3 }", "train.learning_rat: unknown key"),
        ("model { sdf_network { d_in = 4 } }", "model.sdf_network.d_in: foveate supports 3 only"),
        ("train { end_iter = 10.5 }", "train.end_iter: expected an integer"),
        ("train { use_white_bkgd = 1 }", "train.use_white_bkgd: expected true or false"),
        ("model { sdf_network { d_out = 65 }, rendering_network { d_feature = 256 } }", "d_feature (256) must equal"),
        ("dataset { normal_dir = normals }", "dataset.normal_dir: foveate reads 'normal/' only"),
        ("weights { x = 1 }", "unknown section"),
        ("train { = }", "not a valid HOCON file"),
    ],
)
def test_bad_conf_files_name_the_file_and_the_key(tmp_path, text, message):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    with pytest.raises(ValueError, match=r"bad\.conf") as caught:
        read_neus_conf(conf)
    assert message in str(caught.value)


def test_the_conf_reader_serves_the_config_flag(tmp_path):
    from foveate.pipelines import get_pipeline
    from foveate.train import parse_config

    conf = tmp_path / "wmask.conf"
    conf.write_text(NEUS_CONF.replace("CASE_NAME", "bunny"))
    spec = get_pipeline("neus")
    config, _ = parse_config(
        spec.config_type,
        ["--config", str(conf), "--steps", "7"],
        presets=spec.presets,
        prog="foveate train neus",
        description="",
        readers=spec.config_readers,
    )
    assert config.train.steps == 7 and config.sdf.hidden == 128 and config.scene == "./public_data/bunny"
    assert yaml.safe_load(yaml.safe_dump(config_to_dict(config)))["sdf"]["skip_in"] == [3]
