# Backbone study: mmdet's ResNeXt-50 at 1/4 width, 8 groups x 4 channels
# (32x4d has 32 x 4 = 128 channels in stage 1; this one 8 x 4 = 32 = 128/4,
# as base_channels=16 quarters the rest), the baseline of Elastic-ResNeXt.
_base_ = './mask_rcnn_r50_fpn_quarter_ms.py'

model = dict(backbone=dict(type='ResNeXt', groups=8, base_width=4))
