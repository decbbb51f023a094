"""High-quality normals (NeuroPBR's normal_focused): angular loss 1.5, normal L1 weight 2, 150 epochs.

foveate pbr train --config configs/pbr/normal_focused.py --data-root DATA
"""

from foveate.pbr.config import PBRConfig


def get_config() -> PBRConfig:
    config = PBRConfig()
    config.model.encoder_stride = 2
    config.model.decoder_sr_scale = 2
    config.loss.w_ssim = 0.2
    config.loss.w_normal = 1.5
    config.loss.w_gan = 0.08
    config.loss.w_albedo = 0.8
    config.loss.w_roughness = 0.8
    config.loss.w_metallic = 0.8
    config.loss.w_normal_map = 2.0
    config.training.epochs = 150
    config.training.gan_start_epoch = 8
    config.optimizer.g_lr = 1.5e-4
    return config
