"""evokd: evolving knowledge distillation from an LLM teacher into a small CPU student."""

from evokd import _env

_env.apply()

__version__ = "0.1.0"
