# Mask R-CNN + FPN with a slimmable VGG-16, fine-tuned on COCO by
# width-resolution mutual learning (MutualNet, section 4.3, fig. 8).
# - Backbone: VGG-16-BN, widths [0.25, 1.0] (SlimmableVGG); pool2..pool5
#   feed the FPN (strides 4-32). FPN and heads are shared by all
#   sub-networks and stay full width; the FPN lateral convs take the first
#   channels of their weight for narrow inputs (SlimmableConv2d, in only).
# - Every iteration (SubnetSwitchHook + SandwichSampler): width 1.0 at
#   1000x600, width 0.25 and two random widths, each at a random scale from
#   1000 x {600, 480, 360, 240}; all on the same mini-batch, trained with
#   ground truth (no inplace distillation, as in the paper), gradients
#   summed, one SGD step.
# - BN is shared by all widths and trains on batch statistics; its running
#   statistics are recalibrated (section 3.1) on 2000 training images for
#   width 1.0 at 1000x600 after each epoch and before validation. Evaluate
#   other (width, scale) settings with msdet's accuracy-across-scale tool,
#   which recalibrates per setting.
# - Schedule: mmdet's 1x (12 epochs, SGD lr 0.02 for 16 images, steps at 8
#   and 11); the paper gives no detection schedule. Train/test images are
#   resized to (1000, 600), the paper's detection resolution.
# - Backbone weights: VGG-16 pretrained on ImageNet with MutualNet (widths
#   [0.25, 1.0], resolutions {224, 192, 160, 128}, appendix A.2), a local
#   file you bring. Its layout is torchvision's vgg16_bn `features.*`.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

width_range = (0.25, 1.0)
train_scales = [(1000, 600), (1000, 480), (1000, 360), (1000, 240)]

model = dict(
    backbone=dict(
        _delete_=True,
        type='SlimmableVGG',
        depth=16,
        out_indices=(1, 2, 3, 4),
        frozen_stages=-1,
        norm_eval=False,
        width_range=width_range,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/slimvgg16_mutualnet_imagenet.pth')),
    neck=dict(
        in_channels=[128, 256, 512, 512],
        conv_cfg=dict(type='SlimmableConv2d', slim_out=False)))

custom_hooks = [
    dict(
        type='SubnetSwitchHook',
        sampler=dict(
            type='SandwichSampler',
            width_range=width_range,
            scales=train_scales,
            num_subnets=4,
            mode='mutualnet'),
        calib_images=2000)
]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# the sub-networks of an iteration train in msdet's loop (SubnetSwitchHook
# samples them)
train_cfg = dict(type='SubnetEpochBasedTrainLoop')
