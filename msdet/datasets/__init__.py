from . import coco_checks  # noqa: F401  (patches CocoDataset loading)
