"""Training and ONNX export of the codec's default VAE (needs torch; imports nothing else of vaerans_ecs)."""

from .export import export_checkpoint
from .model import AutoEncoder, ModelConfig, count_params, macs_per_pixel
from .train import TrainConfig, train

__all__ = ["AutoEncoder", "ModelConfig", "TrainConfig", "count_params", "export_checkpoint", "macs_per_pixel", "train"]
