# Resizable study (Resizable paper 4.1, table 1, on detection): a Resizable
# ResNet-50 super-network at 1/4 width (base_channels=16) in Mask R-CNN,
# factors {0.5, 0.75, 1.0} per stage (configs/resizable/ at CPU scale),
# trained from scratch with fair sampling (algorithm 1: 3 sub-networks per
# iteration, every (stage, factor) pair once, gradients summed, one step).
# Evaluated at four spatial configurations from the full network down to a
# quarter of its stage-1 resolution, each against the same configuration
# trained alone (mask_rcnn_rsr50_fpn_quarter_ms_alone_*.py). Scale-aware BN
# statistics are re-estimated per configuration on 100 training images
# (also for the networks trained alone).
_base_ = '../backbones/mask_rcnn_r50_fpn_quarter_ms.py'

calib_images = 100
model = dict(
    backbone=dict(
        type='ResizableResNet',
        resize_factors=[0.5, 0.75, 1.0],
        restore_outputs=True))
custom_hooks = [
    dict(
        type='SubnetSwitchHook',
        sampler=dict(type='FairSpatialSampler', switch_at=None),
        calib_images=calib_images)
]
test_cfg = dict(
    scales=[192, 256, 384],
    subnets=[
        dict(resize1=1.0, resize2=1.0, resize3=1.0, resize4=1.0),
        dict(resize1=1.0, resize2=0.75, resize3=1.0, resize4=1.0),
        dict(resize1=0.75, resize2=1.0, resize3=1.0, resize4=1.0),
        dict(resize1=0.5, resize2=1.0, resize3=1.0, resize4=1.0),
    ],
    recalibrate_bn=calib_images)
# DDP: a sub-network leaves the scale-aware BNs of other factors unused.
model_wrapper_cfg = dict(type='CPUCompatibleDDP', find_unused_parameters=True)
train_cfg = dict(type='SubnetEpochBasedTrainLoop')
