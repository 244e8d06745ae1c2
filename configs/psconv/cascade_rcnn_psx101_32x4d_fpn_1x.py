# Cascade R-CNN with PS-ResNeXt-101 (32x4d) + FPN, 1x (PSConv paper 4.3).
_base_ = './cascade_rcnn_psr50_fpn_1x.py'

model = dict(
    backbone=dict(
        type='PSResNeXt',
        depth=101,
        groups=32,
        base_width=4,
        init_cfg=dict(
            checkpoint='checkpoints/psresnext101_32x4d_imagenet.pth')))
