# mmdet's Faster R-CNN + FPN scaled down for the CPU demos, which train from
# scratch on the embedded dataset (256 px images, 3 classes):
# - backbone at 1/4 width (base_channels=16: FPN inputs of 64-512
#   channels), no pretrained weights, so BN trains and no stage is frozen;
#   a demo sets the backbone's type (and the FPN inputs where they differ);
# - FPN and heads at 64 channels (box head fc 256), anchors scaled for
#   256 px images, fewer proposals and sampled RoIs.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        base_channels=16, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=3)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=256))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=50)))
