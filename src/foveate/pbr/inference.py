"""A trained generator outside training: maps from three photos, a glTF material, TorchScript and ONNX files."""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from foveate.files import atomic_write_text
from foveate.train import config_from_dict, load_checkpoint, select_device

from .config import PBRConfig
from .maps import read_image, resize_maps, to_uint8, write_maps
from .networks import GeneratorForExport, MultiViewPBRGenerator
from .training import resolve_pbr_checkpoint

__all__ = ["export_generator", "infer_maps", "load_generator", "read_views", "write_gltf_material"]

VIEW_FILES = ("0.png", "1.png", "2.png")


def load_generator(checkpoint: str | Path, device: str = "cpu") -> tuple[MultiViewPBRGenerator, PBRConfig]:
    """The generator of a training checkpoint (or of a checkpoint directory's ``latest.pth``), in eval mode."""
    path = resolve_pbr_checkpoint(checkpoint)
    state = load_checkpoint(path)
    if state.get("pipeline") != "pbr":
        raise ValueError(f"{path} is a checkpoint of pipeline {state.get('pipeline')!r}, not pbr")
    config = config_from_dict(PBRConfig, state["config"], where=str(path))
    generator = MultiViewPBRGenerator(config.model)
    prefix = "generator."
    weights = {k[len(prefix) :]: v for k, v in state["task"]["model"].items() if k.startswith(prefix)}
    generator.load_state_dict(weights)
    return generator.to(select_device(device)).eval(), config


def read_views(views: list[Path], size: int) -> torch.Tensor:
    """``(1, 3, 3, size, size)`` views in [0, 1] from a folder holding 0.png, 1.png, 2.png or from three files."""
    if len(views) == 1 and views[0].is_dir():
        views = [views[0] / name for name in VIEW_FILES]
    if len(views) != 3:
        raise ValueError(f"--views takes a folder with {', '.join(VIEW_FILES)} or three image files, got {len(views)}")
    for path in views:
        if not path.is_file():
            raise FileNotFoundError(f"view not found: {path}")
    images = [read_image(path, 3) for path in views]
    images = [resize_maps({"albedo": image}, size)["albedo"] for image in images]
    return torch.stack(images)[None]


@torch.no_grad()
def infer_maps(
    checkpoint: str | Path, views: list[Path], out: Path, image_size: int | None = None, device: str = "auto"
) -> list[Path]:
    """Write the four maps a checkpoint's generator estimates from ``views``, and a glTF material using them."""
    generator, config = load_generator(checkpoint, device)
    size = image_size or config.data.image_size
    images = read_views(views, size)
    generator.check_views(images)
    mean, std = (torch.tensor(v).view(1, 1, 3, 1, 1) for v in config.transform.stats())
    parameter = next(generator.parameters())
    maps = generator(((images - mean) / std).to(parameter.device))
    maps = {name: value[0].float().cpu() for name, value in maps.items()}
    out = Path(out)
    write_maps(out, maps)
    written = [out / f"{name}.png" for name in ("albedo", "roughness", "metallic", "normal")]
    return [*written, write_gltf_material(out, maps)]


def write_gltf_material(out: Path, maps: dict[str, torch.Tensor]) -> Path:
    """``material.gltf``: a unit quad with the maps as a glTF 2.0 metallic-roughness material.

    glTF packs roughness in the green and metallic in the blue channel of one texture
    (``metallic_roughness.png``, written here); its normal maps are tangent-space with +Y up,
    as foveate's are, and its base colour is sRGB-encoded, as the albedo PNG is.
    """
    from PIL import Image

    packed = torch.zeros(3, *maps["roughness"].shape[-2:])
    packed[1], packed[2] = maps["roughness"][0], maps["metallic"][0]
    Image.fromarray(to_uint8(packed).permute(1, 2, 0).numpy()).save(out / "metallic_roughness.png")
    positions = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], np.float32)
    normals = np.tile(np.array([0, 0, 1], np.float32), (4, 1))
    tangents = np.tile(np.array([1, 0, 0, 1], np.float32), (4, 1))
    uvs = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
    indices = np.array([0, 1, 2, 0, 2, 3], np.uint16)
    blobs = [positions, normals, tangents, uvs, indices]
    data, views, offset = b"", [], 0
    for blob in blobs:
        raw = blob.tobytes()
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(raw)})
        data += raw + b"\0" * (-len(raw) % 4)
        offset = len(data)
    accessors = [
        {
            "bufferView": 0,
            "componentType": 5126,
            "count": 4,
            "type": "VEC3",
            "min": [-0.5, -0.5, 0],
            "max": [0.5, 0.5, 0],
        },
        {"bufferView": 1, "componentType": 5126, "count": 4, "type": "VEC3"},
        {"bufferView": 2, "componentType": 5126, "count": 4, "type": "VEC4"},
        {"bufferView": 3, "componentType": 5126, "count": 4, "type": "VEC2"},
        {"bufferView": 4, "componentType": 5123, "count": 6, "type": "SCALAR"},
    ]
    images = ["albedo.png", "metallic_roughness.png", "normal.png"]
    gltf = {
        "asset": {"version": "2.0", "generator": "foveate pbr infer"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "material"}],
        "meshes": [
            {
                "primitives": [
                    {
                        "attributes": {"POSITION": 0, "NORMAL": 1, "TANGENT": 2, "TEXCOORD_0": 3},
                        "indices": 4,
                        "material": 0,
                    }
                ]
            }
        ],
        "materials": [
            {
                "name": "estimated",
                "pbrMetallicRoughness": {
                    "baseColorTexture": {"index": 0},
                    "metallicRoughnessTexture": {"index": 1},
                    "metallicFactor": 1.0,
                    "roughnessFactor": 1.0,
                },
                "normalTexture": {"index": 2},
            }
        ],
        "textures": [{"source": i, "sampler": 0} for i in range(len(images))],
        "images": [{"uri": name} for name in images],
        "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 10497, "wrapT": 10497}],
        "buffers": [
            {"byteLength": len(data), "uri": "data:application/octet-stream;base64," + base64.b64encode(data).decode()}
        ],
        "bufferViews": views,
        "accessors": accessors,
    }
    path = out / "material.gltf"
    atomic_write_text(path, json.dumps(gltf, indent=1))
    return path


@torch.no_grad()
def export_generator(checkpoint: str | Path, kind: str, out: Path, image_size: int | None = None) -> tuple[Path, float]:
    """Write the generator as TorchScript (traced) or ONNX; returns the file and its largest difference from PyTorch.

    The exported model takes normalised views ``(1, 3, 3, S, S)`` and returns albedo, roughness,
    metallic and normal, as the generator does. The difference is measured on a random input by
    running the written file (``torch.jit.load`` or onnxruntime).
    """
    generator, config = load_generator(checkpoint, "cpu")
    size = image_size or config.data.image_size
    model = GeneratorForExport(generator).eval()
    example = torch.randn(1, 3, 3, size, size, generator=torch.Generator().manual_seed(0))
    generator.check_views(example)
    expected = model(example)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "torchscript":
        with warnings.catch_warnings():  # torch marks TorchScript deprecated; it is still what C++ and mobile load
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(model, example)
            traced.save(str(out))
            produced = torch.jit.load(str(out))(example)
    elif kind == "onnx":
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError("ONNX export needs onnx and onnxruntime: pip install 'foveate[pbr]'") from error
        torch.onnx.export(
            model,
            (example,),
            str(out),
            input_names=["views"],
            output_names=["albedo", "roughness", "metallic", "normal"],
            dynamo=True,
            external_data=False,
        )
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        produced = [torch.from_numpy(v) for v in session.run(None, {"views": example.numpy()})]
    else:
        raise ValueError(f"--format must be torchscript or onnx, got {kind!r}")
    difference = max(float((a - b).abs().max()) for a, b in zip(expected, produced, strict=True))
    return out, difference
