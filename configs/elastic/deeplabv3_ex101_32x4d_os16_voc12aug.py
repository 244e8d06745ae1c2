# DeepLabv3, Elastic-ResNeXt-101 (32x4d, layout (12, 14, 20, 3)), OS16, VOC
# 2012 aug (ELASTIC table 5: 78.51 mIoU). Recipe: see the ex50 config.
_base_ = './deeplabv3_ex50_32x4d_os16_voc12aug.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(
            checkpoint='checkpoints/elastic_resnext101_32x4d_imagenet.pth')))
