# Cascade R-CNN, ScaleNet-50 + FPN, 1x: mmdet's recipe unchanged (12 epochs,
# SGD lr 0.02 for 16 images, steps at 8 and 11, (1333, 800) input), the
# backbone replaced (not in the ScaleNet paper).
# ImageNet-pretrained ScaleNet-50 weights are a local file you bring.
# SA blocks resample as the reference release does (resample='release':
# bilinear where a pooled map does not divide its input), as its ImageNet
# weights were trained; resample='nearest' is the paper's (3.1).
_base_ = [
    'mmdet::_base_/models/cascade-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='ScaleNet',
        depth=50,
        resample='release',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/scalenet50_imagenet.pth')))
