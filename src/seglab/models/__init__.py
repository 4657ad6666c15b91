"""Models: the encoder registry, pretrained weights and the U-Net built on them."""

from seglab.models.encoders import ENCODERS, EncoderSpec, get_encoder_spec
from seglab.models.unet import ModelSpec, UNet, build_model

__all__ = ["ENCODERS", "EncoderSpec", "ModelSpec", "UNet", "build_model", "get_encoder_spec"]
