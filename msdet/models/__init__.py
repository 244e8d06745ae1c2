from . import backbones  # noqa: F401
from .detectors import ResizableAdaptDetector
from .resize_learner import ResizeLearner

__all__ = ['ResizableAdaptDetector', 'ResizeLearner']
