# Mask R-CNN, ScaleNet-101 + FPN, 1x (mmdet's recipe, backbone replaced).
# SA blocks: the release's resampling (resample='release', from the base).
_base_ = './mask_rcnn_scalenet50_fpn_1x.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='checkpoints/scalenet101_imagenet.pth')))
