# Backbone study: Elastic-ResNeXt-50 (ELASTIC appendix B: (6, 8, 5, 3)
# blocks, 17 Elastic blocks, half of the paths at half resolution) at the
# same 1/4 width as the ResNeXt-50 baseline (8 groups x 4, base_channels=16).
_base_ = './mask_rcnn_r50_fpn_quarter_ms.py'

model = dict(
    backbone=dict(type='ElasticResNeXt', groups=8, base_width=4))
