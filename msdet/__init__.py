"""msdet: multi-scale CNN backbones for MMDetection 3.x and MMSegmentation 1.x.

Importing msdet registers every msdet module in mmengine's root registries,
which mmdet's and mmseg's registries both fall back to, and makes
``torch.load`` accept the checkpoints mmengine writes (see utils/compat.py).
"""
from .utils import checkpoint, compat, dist  # noqa: F401  (first: patches)
from . import ops  # noqa: F401,E402
from . import models  # noqa: F401,E402
from . import datasets  # noqa: F401,E402
from . import evaluation  # noqa: F401,E402
from . import engine  # noqa: F401,E402

__version__ = '0.1.0'
