"""msdet: multi-scale CNN backbones for MMDetection 3.x and MMSegmentation 1.x.

Importing msdet registers every msdet module in mmengine's root registries,
which mmdet's and mmseg's registries both fall back to (models, the
``CheckedCocoDataset`` dataset, hooks, train loops, the ``CPUCompatibleDDP``
model wrapper, the ``'atomic_local'`` file backend), and allow-lists the
types of mmengine's checkpoints for ``torch.load`` (see utils/compat.py).
Nothing of mmengine, mmdet, mmseg, mmcv or torch is replaced.
"""
from .utils import compat, dist, fileio  # noqa: F401
from . import ops  # noqa: F401,E402
from . import models  # noqa: F401,E402
from . import datasets  # noqa: F401,E402
from . import evaluation  # noqa: F401,E402
from . import engine  # noqa: F401,E402

__version__ = '0.1.0'
