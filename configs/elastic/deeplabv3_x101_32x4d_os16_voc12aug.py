# DeepLabv3, original ResNeXt-101 (32x4d), OS16, VOC 2012 aug: the baseline
# of ELASTIC table 5 (77.47 mIoU). Recipe: see the ex50 config.
_base_ = './deeplabv3_ex50_32x4d_os16_voc12aug.py'

model = dict(
    backbone=dict(
        depth=101,
        elastic=False,
        init_cfg=dict(
            checkpoint='checkpoints/resnext101_32x4d_imagenet.pth')))
