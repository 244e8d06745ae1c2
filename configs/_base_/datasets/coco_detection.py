# COCO 2017 with boxes at data/coco/: mmdet's dataset settings. Every msdet
# COCO config that trains on boxes alone inherits them through this file
# (the CPU demos through coco_demo_detection.py), so a dataset setting they
# all share is written here once.
_base_ = 'mmdet::_base_/datasets/coco_detection.py'

# mmdet's CocoDataset with the annotation file validated when it is built.
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
