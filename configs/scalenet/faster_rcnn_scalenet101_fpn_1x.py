# Faster R-CNN, ScaleNet-101 + FPN, 1x, 800/1200 (ScaleNet paper 4.4, table 6).
# SA blocks: the release's resampling (resample='release', from the base).
_base_ = './faster_rcnn_scalenet50_fpn_1x.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='checkpoints/scalenet101_imagenet.pth')))
