# Mask R-CNN, Elastic-ResNeXt-101 (32x4d, layout (12, 14, 20, 3)) + FPN, 1x.
_base_ = './mask_rcnn_ex50_32x4d_fpn_1x.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(
            checkpoint='checkpoints/elastic_resnext101_32x4d_imagenet.pth')))
