# MutualNet study (MutualNet 4.3, fig. 8) on the multi-scale dataset:
# Mask R-CNN + FPN with a slimmable VGG-16-BN at 1/4 width (base_channels=16,
# channel divisor 4, widths [0.25, 1.0]; configs/mutualnet/ at CPU scale),
# trained from scratch with width-resolution mutual learning: every
# iteration width 1.0 at 256 px, width 0.25 and two random widths, each at a
# random scale of 256 x {1, 0.8, 0.6, 0.4} (the paper's 1000 x {600, 480,
# 360, 240} ratios), gradients summed, one step. Shared BN, recalibrated
# (post-statistics, 3.1) on 100 training images per evaluated setting:
# widths {0.25, 0.5, 0.75, 1.0} x the training scales.
# Differences from the paper: from scratch (no ImageNet pre-training), 1/4
# width, 256 px images, the CPU schedule, 100 calibration images (of 400).
_base_ = '../backbones/mask_rcnn_r50_fpn_quarter_ms.py'

width_range = (0.25, 1.0)
calib_images = 100
model = dict(
    backbone=dict(
        _delete_=True,
        type='SlimmableVGG',
        depth=16,
        base_channels=16,
        divisor=4,
        out_indices=(1, 2, 3, 4),
        frozen_stages=-1,
        norm_eval=False,
        width_range=width_range,
        init_cfg=None),
    neck=dict(
        in_channels=[32, 64, 128, 128],
        conv_cfg=dict(type='SlimmableConv2d', slim_out=False)))
custom_hooks = [
    dict(
        type='SubnetSwitchHook',
        sampler=dict(
            type='SandwichSampler',
            width_range=width_range,
            scales=[(256, 256), (205, 205), (154, 154), (102, 102)],
            num_subnets=4,
            mode='mutualnet'),
        calib_images=calib_images)
]
test_cfg = dict(
    scales=[102, 154, 205, 256],
    widths=[0.25, 0.5, 0.75, 1.0],
    recalibrate_bn=calib_images)
train_cfg = dict(type='SubnetEpochBasedTrainLoop')
