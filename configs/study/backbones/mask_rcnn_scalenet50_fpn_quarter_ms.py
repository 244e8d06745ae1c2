# Backbone study: ScaleNet-50 (ScaleNet paper 3.3, table 1) at 1/4 width:
# base_channels=16 and the published ScaleNet-50 allocation with every
# scale's channel count divided by 4 (rounded half up), i.e. 22 / 44 / 88 /
# 175 neurons per SA block in stages 1-4 where the published network has
# 88 / 175 / 349 / 697. Entries: [C at scale 1, 2, 4, 7, design side].
_base_ = './mask_rcnn_r50_fpn_quarter_ms.py'

model = dict(
    backbone=dict(
        type='ScaleNet',
        structure=[
            [16, 2, 1, 3, 56], [14, 7, 1, 0, 56], [15, 7, 0, 1, 56],
            [31, 10, 2, 1, 28], [23, 10, 2, 9, 28], [27, 14, 1, 2, 28],
            [29, 14, 1, 0, 28], [56, 18, 14, 0, 14], [49, 26, 11, 1, 14],
            [49, 25, 13, 1, 14], [39, 32, 17, 0, 14], [34, 32, 22, 0, 14],
            [30, 32, 25, 1, 14], [59, 89, 27, 0, 7], [43, 109, 23, 0, 7],
            [35, 116, 24, 0, 7]
        ]))
