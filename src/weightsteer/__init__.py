"""weightsteer: contrastive weight steering of language models.

The core path: two adapters (POS, NEG) -> ``extract`` -> ``WeightVector`` dW ->
``steer(model, dW, alpha)`` which sets ``theta = theta_base + alpha * dW`` in place and
restores the original weights bit-exactly on exit.
"""

from weightsteer.errors import UserError

__version__ = "0.1.0"

__all__ = ["UserError", "__version__"]
