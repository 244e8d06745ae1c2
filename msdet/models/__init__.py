from . import backbones  # noqa: F401
from ..utils.config import mmseg_available

if mmseg_available():  # segmentation heads (the 'seg' extra)
    from . import elastic_aspp_head  # noqa: F401
