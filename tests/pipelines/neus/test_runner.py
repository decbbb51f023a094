"""``foveate neus``: every mode of NeuS's runner, end to end on the tiny ball, and its errors."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from foveate.cli import main
from foveate.pipelines.neus import NeuSTask, preset

from .conftest import tiny_flags


@pytest.fixture(scope="module")
def runs(ball_dir, tmp_path_factory):
    """One rgb run and one rnb run of the tiny preset on the ball."""
    tmp_path = tmp_path_factory.mktemp("neus")
    flags = tiny_flags(ball_dir, tmp_path)
    assert main(["neus", "--mode", "train", "--name", "rgb", *flags]) == 0
    assert main(["neus", "--mode", "train_rnb", "--name", "rnb", *flags]) == 0
    return tmp_path / "runs"


def run_mode(runs, *args):
    return main(["neus", "--runs-dir", str(runs), *args])


def test_training_writes_a_run_with_its_recording_and_final_mesh(runs):
    for name in ("rgb", "rnb"):
        run = runs / "neus" / name
        assert (run / "checkpoints" / "latest.pt").is_file()
        assert {"config.yaml", "sdf.py", "neus_rendering.py", "task.py"} <= {
            p.name for p in (run / "recording").iterdir()
        }
        assert (run / "meshes" / "00000020.ply").is_file()
    saved = (runs / "neus" / "rnb" / "config.yaml").read_text()
    assert "mode: rnb" in saved


def test_validate_mesh_and_texture_write_world_space_plys(runs, capsys):
    import trimesh

    assert run_mode(runs, "--mode", "validate_mesh", "--name", "rgb", "--resolution", "32") == 0
    assert run_mode(runs, "--mode", "validate_mesh_texture", "--name", "rnb", "--resolution", "32") == 0
    plain = trimesh.load(runs / "neus" / "rgb" / "meshes" / "00000020.ply", process=False)
    textured = trimesh.load(runs / "neus" / "rnb" / "meshes" / "00000020_texture.ply", process=False)
    assert len(plain.faces) > 0 and np.abs(plain.vertices).max() < 1.1
    colors = textured.visual.vertex_colors[:, :3]
    assert colors.shape == (len(textured.vertices), 3) and colors.std() > 0
    assert "00000020_texture.ply" in capsys.readouterr().out


def test_validate_image_and_image_ps_write_side_by_side_pictures(runs):
    assert run_mode(runs, "--mode", "validate_image", "--name", "rgb", "--view", "2", "--resolution-level", "2") == 0
    image = np.asarray(Image.open(runs / "neus" / "rgb" / "validations" / "00000020_2.png"))
    assert image.shape == (10, 20, 3)  # prediction | target at half of 20 x 20
    assert run_mode(runs, "--mode", "validate_image_ps", "--name", "rnb", "--light", "2") == 0
    lit = np.asarray(Image.open(runs / "neus" / "rnb" / "validations" / "00000020_0_2.png"))
    normals = np.asarray(Image.open(runs / "neus" / "rnb" / "normals" / "00000020_0_ps.png"))
    assert lit.shape == (10, 5, 3) and normals.shape == (10, 5, 3)  # prediction over target, 1/4 resolution
    assert normals[5:].std() > 0  # the input normals are there


def test_interpolate_renders_frames_and_a_video(runs):
    assert run_mode(runs, "--mode", "interpolate_0_3", "--name", "rgb", "--frames", "3", "--resolution-level", "4") == 0
    folder = runs / "neus" / "rgb" / "videos"
    assert sorted(p.name for p in (folder / "00000020_0_3").iterdir()) == ["000.png", "001.png", "002.png"]
    assert (folder / "00000020_0_3.mp4").stat().st_size > 0


def test_without_a_name_the_newest_run_of_the_scene_is_used(runs, ball_dir, capsys):
    assert run_mode(runs, "--mode", "validate_image", "--scene", str(ball_dir), "--resolution-level", "4") == 0
    assert "using the newest run of" in capsys.readouterr().err


def test_is_continue_resumes_the_named_run(runs, ball_dir, tmp_path):
    shutil.copytree(runs / "neus" / "rgb", runs / "neus" / "more")
    assert (
        run_mode(runs, "--mode", "train", "--name", "more", "--is-continue", "--steps", "24", "--train.no-progress")
        == 0
    )
    state = torch.load(runs / "neus" / "more" / "checkpoints" / "latest.pt", weights_only=False)
    assert state["step"] == 24


def test_the_runs_root_is_the_runners_own_flag(tmp_path, capsys):
    assert main(["neus", "--mode", "train", "--train.runs-dir", str(tmp_path)]) == 2
    assert "--runs-dir" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "validate_image_ps", "--name", "rgb"], "needs an RNb run"),
        (["--mode", "validate_image", "--name", "rgb", "--view", "99"], "view 99 is not among the run's 8"),
        (["--mode", "validate_mesh", "--name", "nobody"], "no run with a checkpoint"),
        (["--mode", "validate_everything", "--name", "rgb"], "--mode must be one of"),
        (["--mode", "validate_mesh"], "give --name RUN, or --scene"),
    ],
)
def test_mistakes_are_one_line_errors(runs, capsys, args, message):
    assert run_mode(runs, *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_rgb_training_on_an_rnb_only_scene_says_to_use_rnb_mode(ball_dir, tmp_path, capsys):
    only_rnb = tmp_path / "rnb-only"
    only_rnb.mkdir()
    for name in ("normal", "albedo", "mask"):
        shutil.copytree(ball_dir / name, only_rnb / name)
    shutil.copy(ball_dir / "cameras.npz", only_rnb)
    assert main(["neus", "--mode", "train", *tiny_flags(only_rnb, tmp_path)]) == 2
    assert "train it with --mode rnb" in capsys.readouterr().err


def test_rnb_training_without_normal_maps_names_the_folder(ball_dir, tmp_path, capsys):
    only_rgb = tmp_path / "rgb-only"
    only_rgb.mkdir()
    for name in ("image", "mask"):
        shutil.copytree(ball_dir / name, only_rgb / name)
    shutil.copy(ball_dir / "cameras_sphere.npz", only_rgb)
    assert main(["neus", "--mode", "train_rnb", *tiny_flags(only_rgb, tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "normal/: not found (RNb-NeuS scenes need normal maps)" in err and "Traceback" not in err


def test_a_scene_without_a_true_mesh_is_judged_by_psnr(ball_dir, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(ball_dir, bare)
    (bare / "mesh.ply").unlink()
    task = NeuSTask.from_config(preset("tiny", scene=str(bare)), torch.device("cpu"))
    assert task.metric.name == "psnr" and task.metric.higher_is_better
    assert "psnr" in task.validate(full=False).metrics
    from foveate.pipelines import get_pipeline
    from foveate.report import compare

    with pytest.raises(ValueError, match="judged by psnr, not by the neus pipeline's chamfer"):
        compare(get_pipeline("neus"), preset("tiny", scene=str(bare)), ["uniform"], [0], tmp_path / "cmp")


@pytest.mark.parametrize(
    "flags",
    [
        # NeuS's own path: an MLP over a positional encoding, autograd normals, 8 + 8 up-sampled samples.
        [
            "--sdf.encoding",
            "frequency",
            "--sdf.gradient",
            "autograd",
            "--sdf.activation",
            "softplus",
            "--sdf.hidden",
            "48",
            "--sdf.layers",
            "3",
            "--sdf.skip-in",
            "2",
            "--render.kind",
            "upsample",
            "--render.n-samples",
            "8",
            "--render.n-importance",
            "8",
            "--render.up-sample-steps",
            "2",
        ],
        # womask: no mask loss, a NeRF++ background outside the sphere, the cos-anneal ratio.
        [
            "--render.kind",
            "upsample",
            "--render.n-samples",
            "8",
            "--render.n-importance",
            "4",
            "--render.up-sample-steps",
            "2",
            "--render.n-outside",
            "4",
            "--background.hidden",
            "16",
            "--background.layers",
            "2",
            "--loss.mask-weight",
            "0",
            "--loss.anneal-end",
            "10",
        ],
    ],
    ids=["neus-mlp", "womask-background"],
)
def test_neus_own_networks_and_background_train(ball_dir, tmp_path, flags):
    argv = ["neus", "--mode", "train", "--steps", "4", *tiny_flags(ball_dir, tmp_path), *flags]
    assert main(argv) == 0
    (run,) = [path for path in (tmp_path / "runs" / "neus").iterdir() if path.is_dir()]
    assert (run / "meshes" / "00000004.ply").is_file()


@pytest.mark.parametrize("name", ["default", "womask", "rnb", "fast", "cpu"])
def test_every_preset_trains_and_meshes(ball_dir, tmp_path, name):
    """Each preset's networks, renderer and losses fit together: two small steps, small meshes."""
    flags = tiny_flags(ball_dir, tmp_path)
    flags[flags.index("tiny")] = name
    argv = ["neus", "--mode", "train", "--steps", "2", "--batch-size", "32", *flags]
    argv += ["--mesh-resolution", "24", "--val-mesh-resolution", "16", "--chamfer-samples", "2000"]
    argv += ["--render.occupancy-resolution", "16"]
    assert main(argv) == 0
    (run,) = [path for path in (tmp_path / "runs" / "neus").iterdir() if path.is_dir()]
    assert (run / "meshes" / "00000002.ply").is_file()
