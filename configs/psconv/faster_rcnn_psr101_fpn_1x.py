# Faster R-CNN with PS-ResNet-101 + FPN, 1x (PSConv paper 4.3).
_base_ = './faster_rcnn_psr50_fpn_1x.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='checkpoints/psresnet101_imagenet.pth')))
