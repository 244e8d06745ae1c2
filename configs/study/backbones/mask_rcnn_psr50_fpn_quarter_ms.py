# Backbone study: PS-ResNet-50 (PSConv paper 4.3) at 1/4 width: ResNet-50's
# 3x3 convs become PSConv with dilation pattern (1, 2, 1, 4).
_base_ = './mask_rcnn_r50_fpn_quarter_ms.py'

model = dict(
    backbone=dict(type='PSResNet', ps_cfg=dict(pattern=(1, 2, 1, 4))))
