from . import backbones, mmdet_v1  # noqa: F401
from ..utils.config import mmseg_available
from .detectors import ResizableAdaptDetector
from .resize_learner import ResizeLearner

if mmseg_available():  # segmentation heads (the 'seg' extra)
    from . import elastic_aspp_head  # noqa: F401

__all__ = ['ResizableAdaptDetector', 'ResizeLearner']
