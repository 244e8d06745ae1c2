# mmdet's Mask R-CNN R50-FPN at 1/4 width for 256 px images, trained from
# scratch (the CPU demo recipe, configs/demo/mask_rcnn_psr50_fpn_demo.py):
# ResNet-50 with base_channels=16 (same depth, ~1/16 of the FLOPs), BN
# training and nothing frozen, 64-channel FPN and heads, anchors scaled to
# 16-256 px, fewer proposals and sampled RoIs.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        base_channels=16,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=256))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=100)))
