# COCO 2017 with boxes and instance masks at data/coco/: mmdet's dataset
# settings. Every msdet COCO config with a mask head on COCO 2017 inherits
# them through this file, so a dataset setting they all share is written
# here once (coco_detection.py is its boxes-only twin).
_base_ = 'mmdet::_base_/datasets/coco_instance.py'

# mmdet's CocoDataset with the annotation file validated when it is built.
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
