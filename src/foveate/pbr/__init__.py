"""Multi-view PBR material estimation (seed 003, NeuroPBR): three views of a material in, four maps out.

``maps`` holds the conventions (albedo, roughness, metallic, normal), ``materials`` procedural and
real texture sets, ``shading`` a Cook-Torrance renderer, ``dirt`` NeuroPBR's artefacts, ``dataset``
and ``data`` its folder layout, ``networks`` the generator (shared encoder, cross-view fusion,
multi-head decoder) and ``discriminators`` the PatchGANs, ``losses`` and ``metrics`` NeuroPBR's,
``task`` the training on the shared loop, ``inference`` maps from photos and exports.
"""

from foveate.pipelines.registry import PipelineSpec, register_pipeline

from .config import PRESETS, PBRConfig, read_config_file
from .task import PBRTask


def _train(argv: list[str]) -> int:
    from .training import train_command

    return train_command(argv)


SPEC = register_pipeline(
    PipelineSpec(
        "pbr",
        PBRConfig,
        PBRTask,
        PRESETS,
        "Estimate PBR maps from three views of a material (NeuroPBR's generator and GAN).",
        variants={
            "uniform": {"sampling__strategy": "uniform"},
            "error_weighted": {"sampling__strategy": "error_weighted"},
            "adaptive": {"sampling__strategy": "adaptive"},
        },
        default_variants=2,
        config_readers={".py": read_config_file},
        command=_train,
        length="training.epochs",
    )
)

__all__ = ["PRESETS", "SPEC", "PBRConfig", "PBRTask"]
