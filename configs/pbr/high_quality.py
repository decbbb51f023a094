"""Best quality (NeuroPBR's high_quality): ResNet-101 at stride 2 with 2x super-resolution, 6-layer fusion, 200 epochs.

foveate pbr train --config configs/pbr/high_quality.py --data-root DATA
"""

from foveate.pbr.config import PBRConfig


def get_config() -> PBRConfig:
    config = PBRConfig()
    config.model.encoder_backbone = "resnet101"
    config.model.encoder_stride = 2
    config.model.decoder_sr_scale = 2
    config.model.transformer_depth = 6
    config.model.transformer_num_heads = 32
    config.loss.w_ssim = 0.5
    config.loss.w_normal = 0.8
    config.loss.w_gan = 0.1
    config.loss.w_albedo = 1.2
    config.training.epochs = 200
    config.training.gan_start_epoch = 10
    config.optimizer.g_lr = 1e-4
    config.optimizer.d_lr = 2e-4
    config.optimizer.scheduler_warmup_epochs = 10
    return config
