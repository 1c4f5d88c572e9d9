"""roadmap: the ConvNeXt paper's modernization roadmap, one configurable network and one switch per step."""

from .model import ConfigError, ModelConfig, RoadmapNet, gmacs, num_params
from .steps import get_step, step_names, steps

__all__ = ["ConfigError", "ModelConfig", "RoadmapNet", "build_model", "from_torchvision", "gmacs", "get_step",
           "num_params", "step_names", "steps"]


def build_model(step: str, regime: str = "r50", num_classes: int = 1000) -> RoadmapNet:
    """The network of a roadmap step, e.g. build_model("inverted_bottleneck") or build_model("widen", "r200")."""
    from .config import step_model_config

    return RoadmapNet(step_model_config(step, regime, num_classes))


def from_torchvision(tv_model):
    """The roadmap network equal to a torchvision resnet50/101/152 or convnext_tiny/small/base/large, with its
    weights loaded (strict)."""
    from .torchvision_compat import from_torchvision as convert

    return convert(tv_model)
