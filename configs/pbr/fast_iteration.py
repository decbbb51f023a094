"""Quick experiments (NeuroPBR's fast_iteration): ResNet-18 at stride 2, 2x super-resolution, 2-layer fusion.

foveate pbr train --config configs/pbr/fast_iteration.py --data-root DATA
"""

from foveate.pbr.config import PBRConfig


def get_config() -> PBRConfig:
    config = PBRConfig()
    config.model.encoder_backbone = "resnet18"
    config.model.encoder_stride = 2
    config.model.decoder_sr_scale = 2
    config.model.transformer_depth = 2
    config.model.transformer_num_heads = 16
    config.training.epochs = 50
    config.training.val_every_n_epochs = 2
    config.training.save_every_n_epochs = 10
    return config
