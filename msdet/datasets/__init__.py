from .checked_coco import CheckedCocoDataset
from .transforms import CenterPad, RandomLogRescale, V1Resize

__all__ = ['CheckedCocoDataset', 'CenterPad', 'RandomLogRescale', 'V1Resize']
