# The Resizable super-network detector (../faster_rcnn_rsr50_fpn_1x.py)
# scaled down to train from scratch on a 2-core CPU, on the embedded
# synthetic COCO dataset (python tools/make_coco_demo.py data/coco_demo).
# What differs from the 1x config, and why:
# - ResizableResNet-50 at 1/4 width (base_channels=16): same depth, same
#   resize points and scale-aware BNs, no pretrained weights (nothing
#   frozen).
# - Factors {0.5, 0.75, 1.0} per stage: 3 sub-networks per iteration
#   instead of 5 (CPU time); a 256 px image still keeps >= 2 px in layer4
#   at the smallest configuration.
# - FPN / heads at 64-256 channels, anchors scaled for 256 px images,
#   3 classes, AdamW (steadier than SGD from scratch), a short schedule
#   (24 epochs), BN recalibrated on 40 images.
# The scaled-down detector, the dataset and the schedule are the CPU demos'
# shared ones in configs/_base_/; this file adds the super-network and its
# fair-sampling training.
_base_ = [
    '../../_base_/models/faster_rcnn_fpn_cpu_demo.py',
    '../../_base_/datasets/coco_demo_detection.py',
    '../../_base_/schedules/cpu_demo_24e.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

resize_factors = [0.5, 0.75, 1.0]

model = dict(
    backbone=dict(
        type='ResizableResNet',
        resize_factors=resize_factors,
        restore_outputs=True))

custom_hooks = [
    dict(
        type='SubnetSwitchHook',
        sampler=dict(type='FairSpatialSampler', switch_at=None),
        calib_images=40)
]
randomness = dict(seed=0)
# the sub-networks of an iteration train in msdet's loop (SubnetSwitchHook
# samples them)
train_cfg = dict(type='SubnetEpochBasedTrainLoop')
