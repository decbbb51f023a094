"""The generator exported to ONNX (run by onnxruntime) and to TorchScript reproduces PyTorch's maps."""

from __future__ import annotations

import warnings

import pytest
import torch

from foveate.pbr.networks import GeneratorForExport, ModelConfig, MultiViewPBRGenerator

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

ATOL = 1e-4


def exportable(sr_scale: int) -> GeneratorForExport:
    torch.manual_seed(0)
    config = ModelConfig(
        encoder_backbone="resnet18",
        encoder_base_channels=8,
        transformer_dim=32,
        transformer_num_heads=4,
        transformer_depth=2,
        transformer_pos_grid=2,
        decoder_sr_scale=sr_scale,
    )
    generator = MultiViewPBRGenerator(config)
    generator.train()
    with torch.no_grad():  # move BatchNorm statistics off their initial 0 / 1 so eval mode is not trivial
        generator(torch.randn(4, 3, 3, 64, 64))
    return GeneratorForExport(generator).eval()


def largest_error(outputs, reference) -> float:
    return max(float((torch.as_tensor(o) - r).abs().max()) for o, r in zip(outputs, reference, strict=True))


@pytest.mark.slow
def test_onnx_and_torchscript_reproduce_pytorch(tmp_path):
    model = exportable(sr_scale=2)
    views = torch.randn(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(views)
    assert [tuple(r.shape) for r in reference] == [
        (2, 3, 128, 128),
        (2, 1, 128, 128),
        (2, 1, 128, 128),
        (2, 3, 128, 128),
    ]

    path = tmp_path / "generator.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on deprecated internals
        torch.onnx.export(model, (views,), str(path), input_names=["views"], verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"views": views.numpy()})
    assert largest_error(outputs, reference) < ATOL

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        traced = torch.jit.trace(model, views)
        traced.save(str(tmp_path / "generator.pt"))
        loaded = torch.jit.load(str(tmp_path / "generator.pt"))
    with torch.no_grad():
        assert largest_error(traced(views), reference) < ATOL
        assert largest_error(loaded(views), reference) < ATOL
