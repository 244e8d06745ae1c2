# Faster R-CNN, ScaleNet-101 + FPN, 1x, tested at 600/1000 (ScaleNet paper
# table 6): the model of faster_rcnn_scalenet101_fpn_1x.py.
# SA blocks: the release's resampling (resample='release', from the base).
_base_ = './faster_rcnn_scalenet50_fpn_1x_test600.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='checkpoints/scalenet101_imagenet.pth')))
