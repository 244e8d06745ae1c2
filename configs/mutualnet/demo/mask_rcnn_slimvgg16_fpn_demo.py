# The MutualNet detector (../mask_rcnn_slimvgg16_fpn_1x.py) scaled down to
# train from scratch on a 2-core CPU, on the embedded synthetic COCO dataset
# (python tools/make_coco_demo.py data/coco_demo).
# What differs from the 1x config, and why:
# - VGG-16 at 1/4 width (base_channels=16, 13 convs as in VGG-16), channel
#   divisor 4 so that width 0.25 still is a quarter of every layer; no
#   pretrained weights.
# - FPN / heads at 64-256 channels, anchors scaled for 256 px images.
# - 256 px inputs; the paper's scales 1000 x {600, 480, 360, 240} become
#   {256, 205, 154, 102} (same ratios), 3 classes.
# - AdamW (steadier than SGD from scratch), a short step schedule (24
#   epochs), BN recalibrated on 40 images.
# The scaled-down detector, the dataset and the schedule are the CPU demos'
# shared ones in configs/_base_/; this file adds the slimmable backbone and
# the sandwich-rule training of the 1x config.
_base_ = [
    '../../_base_/models/mask_rcnn_fpn_cpu_demo.py',
    '../../_base_/datasets/coco_demo_instance.py',
    '../../_base_/schedules/cpu_demo_24e.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

width_range = (0.25, 1.0)
train_scales = [(256, 256), (205, 205), (154, 154), (102, 102)]

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
            scales=train_scales,
            num_subnets=4,
            mode='mutualnet'),
        calib_images=40)
]
# the sub-networks of an iteration train in msdet's loop (SubnetSwitchHook
# samples them)
train_cfg = dict(type='SubnetEpochBasedTrainLoop')
