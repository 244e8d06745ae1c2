# The Resizable super-network detector (faster_rcnn_rsr50_fpn_1x.py) scaled
# down to train from scratch on a 2-core CPU, on the embedded synthetic COCO
# dataset (python tools/make_coco_demo.py data/coco_demo).
# What differs from the 1x config, and why:
# - ResizableResNet-50 at 1/4 width (base_channels=16): same depth, same
#   resize points and scale-aware BNs, no pretrained weights (nothing
#   frozen).
# - Factors {0.5, 0.75, 1.0} per stage: 3 sub-networks per iteration
#   instead of 5 (CPU time); a 256 px image still keeps >= 2 px in layer4
#   at the smallest configuration.
# - FPN / heads at 64-256 channels, anchors scaled for 256 px images,
#   3 classes, AdamW (steadier than SGD from scratch), a short schedule,
#   BN recalibrated on 40 images.
_base_ = './faster_rcnn_rsr50_fpn_1x.py'

data_root = 'data/coco_demo/'
metainfo = dict(
    classes=('circle', 'square', 'triangle'),
    palette=[(220, 60, 60), (55, 200, 75), (70, 90, 230)])
image_scale = (256, 256)
max_epochs = 24
resize_factors = [0.5, 0.75, 1.0]

model = dict(
    backbone=dict(
        base_channels=16,
        frozen_stages=-1,
        resize_factors=resize_factors,
        init_cfg=None),
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

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
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
         milestones=[18, 22], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs))
auto_scale_lr = dict(enable=False, base_batch_size=4)
custom_hooks = [
    dict(
        type='SubnetSwitchHook',
        sampler=dict(type='FairSpatialSampler', switch_at=None),
        calib_images=40)
]
randomness = dict(seed=0)
find_unused_parameters = False
