# Cascade R-CNN, Elastic-ResNeXt-50 (32x4d) + FPN, 1x schedule (mmdet's:
# 12 epochs, SGD lr 0.02 for 16 images, steps at 8 and 11, (1333, 800),
# COCO at data/coco/). The ELASTIC paper reports no detection results; the
# backbone is the paper's ImageNet model (appendix B, table 10), used as
# mmdet uses ResNeXt-50 (frozen stem + stage 1, BN in eval mode).
_base_ = [
    'mmdet::_base_/models/cascade-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='ElasticResNeXt',
        depth=50,
        groups=32,
        base_width=4,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/elastic_resnext50_32x4d_imagenet.pth')))
