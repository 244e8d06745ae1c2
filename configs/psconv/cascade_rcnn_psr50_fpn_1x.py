# Cascade R-CNN with PS-ResNet-50 + FPN, 1x (PSConv paper 4.3, tables 7-8).
_base_ = [
    'mmdet::_base_/models/cascade-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='PSResNet',
        depth=50,
        ps_cfg=dict(pattern=(1, 2, 1, 4)),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/psresnet50_imagenet.pth')))
