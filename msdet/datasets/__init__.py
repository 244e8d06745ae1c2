from .checked_coco import CheckedCocoDataset

__all__ = ['CheckedCocoDataset']
