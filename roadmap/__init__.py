"""roadmap: the ConvNeXt paper's modernization roadmap, one configurable network and one switch per step."""

from roadmap.errors import ConfigError
from roadmap.steps import Roadmap, Step

__all__ = ["ConfigError", "ModelConfig", "Roadmap", "RoadmapNet", "Step", "build_model", "from_timm",
           "from_torchvision", "gmacs", "load_roadmap", "num_params"]


def __getattr__(name):
    """The network's names load torch on first use, so `import roadmap.steps` stays torch-free."""
    if name in ("ModelConfig", "RoadmapNet", "gmacs", "num_params"):
        from roadmap.nets import model

        return getattr(model, name)
    raise AttributeError(f"module 'roadmap' has no attribute {name!r}")


def __dir__():
    """The lazy names too (PEP 562), so dir() and the API docs list them."""
    return sorted(set(globals()) | set(__all__))


def build_model(step: str, roadmap: str = "convnext_t", num_classes: int = 1000):
    """The network of a roadmap step, e.g. build_model("inverted_bottleneck") or build_model("widen", "convnext_b")."""
    from roadmap.config import step_model_config
    from roadmap.nets.model import RoadmapNet

    return RoadmapNet(step_model_config(step, roadmap, num_classes))


def load_roadmap(name: str = "convnext_t", config_dirs=()) -> Roadmap:
    """A roadmap from conf/roadmap/<name>.yaml (or from one of `config_dirs`): its steps, in order, with the
    published numbers they reproduce."""
    from roadmap.config import load_roadmap as load

    return load(name, config_dirs)


def from_torchvision(tv_model):
    """The roadmap network equal to a torchvision resnet50/101/152 or convnext_tiny/small/base/large, with its
    weights loaded (strict)."""
    from roadmap.nets.convert import from_torchvision as convert

    return convert(tv_model)


def from_timm(timm_model):
    """The roadmap network equal to a timm bottleneck ResNet (resnet50, resnet50d: ResNet-B/C/D), with its weights."""
    from roadmap.nets.convert import from_timm as convert

    return convert(timm_model)
