# Cascade Mask R-CNN, PS-ResNet-50 + FPN, 1x: the PSConv release's trained
# model (d-li14/PSConv model zoo: box / mask AP 42.9 / 36.9 on COCO val2017),
# evaluated in mmdet 3 as the release's mmdet 1.x fork evaluated it. Convert
# its checkpoint, then test:
#   python tools/model_converters/psconv_detector_release.py \
#       cascade_mask_rcnn_r50_fpn_1x.pth \
#       checkpoints/cascade_mask_rcnn_psr50_fpn_1x_release.pth
#   python tools/test.py \
#       configs/psconv/cascade_mask_rcnn_psr50_fpn_1x_release.py \
#       checkpoints/cascade_mask_rcnn_psr50_fpn_1x_release.pth
# The model is cascade_mask_rcnn_psr50_fpn_1x.py's; inference follows the
# release's configs/psconv/cascade_mask_rcnn_r50_fpn_1x.py in mmdet 1.x:
# - anchors (scale 8, ratios 0.5 / 1 / 2) centred at (stride - 1) / 2 and
#   rounded to integers (mmdet's LegacyAnchorGenerator); boxes decoded with
#   1.x's inclusive widths (V1DeltaXYWHBBoxCoder);
# - RPN: the 1000 best boxes of each level, NMS per level at IoU 0.7, the 1000
#   best kept, no minimum size;
# - RoIAlign 7x7 for boxes, 14x14 for masks, 2x2 samples per bin, no half-pixel
#   offset (aligned=False), RoIs as 1.x's extractor saw them (V1RoIExtractor);
# - R-CNN (3 stages; their class scores averaged): scores > 0.05, class-wise
#   NMS at IoU 0.5 on the boxes in the original image, 100 per image; masks
#   pasted as 1.x pasted them (V1FCNMaskHead), probability > 0.5;
# - NMS IoUs with 1.x's inclusive areas (offset=1); the image resized to
#   (1333, 800) keeping its ratio, 1.x's scale factor (V1Resize); boxes
#   returned in mmdet 3's convention (x2 + 1, y2 + 1), so CocoMetric reports
#   1.x's widths.
# What is exact and what is not: model_zoo.md, "PSConv release detectors"
# (under "Released models converted").
# Evaluation only (training stays the paper config's).
_base_ = './cascade_mask_rcnn_psr50_fpn_1x.py'

model = dict(
    backbone=dict(init_cfg=None),
    rpn_head=dict(
        anchor_generator=dict(type='LegacyAnchorGenerator', center_offset=0.5),
        bbox_coder=dict(type='V1DeltaXYWHBBoxCoder')),
    roi_head=dict(
        type='V1CascadeRoIHead',
        bbox_roi_extractor=dict(
            type='V1RoIExtractor',
            roi_layer=dict(sampling_ratio=2, aligned=False)),
        bbox_head=[
            dict(
                type='Shared2FCBBoxHead',
                in_channels=256,
                fc_out_channels=1024,
                roi_feat_size=7,
                num_classes=80,
                bbox_coder=dict(
                    type='V1DeltaXYWHBBoxCoder',
                    target_means=[0., 0., 0., 0.],
                    target_stds=[0.1, 0.1, 0.2, 0.2]),
                reg_class_agnostic=True,
                loss_cls=dict(
                    type='CrossEntropyLoss',
                    use_sigmoid=False,
                    loss_weight=1.0),
                loss_bbox=dict(type='SmoothL1Loss', beta=1.0,
                               loss_weight=1.0)),
            dict(
                type='Shared2FCBBoxHead',
                in_channels=256,
                fc_out_channels=1024,
                roi_feat_size=7,
                num_classes=80,
                bbox_coder=dict(
                    type='V1DeltaXYWHBBoxCoder',
                    target_means=[0., 0., 0., 0.],
                    target_stds=[0.05, 0.05, 0.1, 0.1]),
                reg_class_agnostic=True,
                loss_cls=dict(
                    type='CrossEntropyLoss',
                    use_sigmoid=False,
                    loss_weight=1.0),
                loss_bbox=dict(type='SmoothL1Loss', beta=1.0,
                               loss_weight=1.0)),
            dict(
                type='Shared2FCBBoxHead',
                in_channels=256,
                fc_out_channels=1024,
                roi_feat_size=7,
                num_classes=80,
                bbox_coder=dict(
                    type='V1DeltaXYWHBBoxCoder',
                    target_means=[0., 0., 0., 0.],
                    target_stds=[0.033, 0.033, 0.067, 0.067]),
                reg_class_agnostic=True,
                loss_cls=dict(
                    type='CrossEntropyLoss',
                    use_sigmoid=False,
                    loss_weight=1.0),
                loss_bbox=dict(type='SmoothL1Loss', beta=1.0,
                               loss_weight=1.0)),
        ],
        mask_roi_extractor=dict(
            type='V1RoIExtractor',
            roi_layer=dict(sampling_ratio=2, aligned=False)),
        mask_head=dict(type='V1FCNMaskHead')),
    test_cfg=dict(
        rpn=dict(
            nms_pre=1000,
            max_per_img=1000,
            nms=dict(type='nms', iou_threshold=0.7, offset=1),
            min_bbox_size=-1),
        rcnn=dict(
            score_thr=0.05,
            nms=dict(type='nms', iou_threshold=0.5, offset=1),
            max_per_img=100,
            mask_thr_binary=0.5)))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='V1Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
