"""llmrnn: LLM-as-RNN forecasters and classifiers on local GGUF models (arXiv 2601.13352)."""

from .classification import LLMRNNClassifier
from .forecasting import LLMRNNForecaster
from .models import available_models, resolve_model
from .trace import error_correction_rate

__version__ = "0.1.0"

__all__ = [
    "LLMRNNClassifier",
    "LLMRNNForecaster",
    "available_models",
    "error_correction_rate",
    "resolve_model",
]
