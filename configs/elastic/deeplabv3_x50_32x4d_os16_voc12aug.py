# DeepLabv3, original ResNeXt-50 (32x4d), OS16, VOC 2012 aug: the baseline of
# ELASTIC table 5 (75.29 mIoU). Same recipe as the Elastic config; the
# backbone is ElasticResNeXt(elastic=False), i.e. plain ResNeXt-50 with
# mmdet's parameter names, layout (3, 4, 6, 3) and the same multi-grid code.
_base_ = './deeplabv3_ex50_32x4d_os16_voc12aug.py'

model = dict(
    backbone=dict(
        elastic=False,
        init_cfg=dict(checkpoint='checkpoints/resnext50_32x4d_imagenet.pth')))
