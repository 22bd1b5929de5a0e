"""Offline-by-default environment, applied before any heavy library is imported.

Nothing in evokd may reach the internet unless the user picks a hosted teacher, so the
hub, LiteLLM's cost map, onnxruntime telemetry and Ray's usage stats are switched off, and DSPy's disk cache
lives inside the package instead of the user's home.
"""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "ORT_DISABLE_TELEMETRY": "1",
    "DSPY_CACHEDIR": str(PACKAGE_DIR / ".dspy_cache"),
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",  # `--executor ray`: Ray would otherwise report usage to its servers
}


def apply() -> None:
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
