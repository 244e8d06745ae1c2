# MutualNet study, US-Net baseline (MutualNet 4.3): the same slimmable
# detector and schedule, widths sampled by the sandwich rule, every
# sub-network trained at the one resolution 256 px (width only).
_base_ = './mask_rcnn_slimvgg16_fpn_quarter_ms_mutualnet.py'

custom_hooks = [
    dict(
        type='SubnetSwitchHook',
        sampler=dict(
            type='SandwichSampler',
            width_range=(0.25, 1.0),
            scales=[(256, 256)],
            num_subnets=4,
            mode='usnet'),
        calib_images=100)
]
