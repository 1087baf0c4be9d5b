"""espcn-jax: ESPCN (Shi et al., CVPR 2016) in JAX/Flax."""

from espcn_jax.model import Spec, apply, init
from espcn_jax.ps import depth_to_space, space_to_depth
from espcn_jax.weights import pretrained

__version__ = "0.1.0"
__all__ = ["Spec", "apply", "init", "depth_to_space", "space_to_depth", "pretrained", "__version__"]
