# The main path (configs/mask_rcnn_psr50_fpn_1x.py) scaled down to train from
# scratch on a 2-core CPU in minutes, on the embedded synthetic COCO dataset
# (python tools/make_coco_demo.py data/coco_demo).
# What differs from the main config, and why:
# - PS-ResNet-50 at 1/4 width (base_channels=16): same depth, same PSConv
#   blocks, ~1/16 of the FLOPs; no pretrained weights, so BN trains
#   (norm_eval=False) and no stage is frozen.
# - FPN / heads at 64-128 channels, anchors scaled for 256 px images.
# - 256 x 256 inputs, 3 classes, AdamW (steadier than SGD from scratch),
#   a short step schedule.
_base_ = '../mask_rcnn_psr50_fpn_1x.py'

data_root = 'data/coco_demo/'
metainfo = dict(
    classes=('circle', 'square', 'triangle'),
    palette=[(220, 60, 60), (55, 200, 75), (70, 90, 230)])
image_scale = (256, 256)
max_epochs = 12

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
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=3),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64, num_classes=3)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=256))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[9, 11], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs))
auto_scale_lr = dict(enable=False, base_batch_size=4)
# RNG states in checkpoints: a resumed run continues exactly (issue 9)
custom_hooks = [dict(type='RNGStateHook')]
randomness = dict(seed=0)
