# COCO 2017 with boxes at data/coco/: mmdet's dataset settings. Every msdet
# COCO config that trains on boxes alone inherits them through this file
# (the CPU demos through coco_demo_detection.py), so a dataset setting they
# all share is written here once.
_base_ = 'mmdet::_base_/datasets/coco_detection.py'
