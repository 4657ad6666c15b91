"""seglab: train, evaluate and compare U-Net segmentation models on pretrained backbones."""

from seglab.errors import SeglabError
from seglab.models import ENCODERS, ModelSpec, UNet, build_model

__version__ = "0.1.0"
__all__ = ["ENCODERS", "ModelSpec", "SeglabError", "UNet", "__version__", "build_model"]
