"""The networks: the roadmap's one configurable network (model), the Swin reference networks (swin), conversion
from torchvision and timm (convert)."""
