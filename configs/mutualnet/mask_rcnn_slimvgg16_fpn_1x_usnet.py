# US-Net baseline for MutualNet section 4.3 / fig. 8: the same detector and
# schedule, widths sampled by the sandwich rule but every sub-network
# trained at the fixed 1000x600 resolution, from a VGG-16 pretrained on
# ImageNet with US-Net (appendix A.2; a local file you bring).
_base_ = './mask_rcnn_slimvgg16_fpn_1x.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/slimvgg16_usnet_imagenet.pth')))

custom_hooks = [
    dict(
        type='SubnetSwitchHook',
        sampler=dict(
            type='SandwichSampler',
            width_range=(0.25, 1.0),
            scales=[(1000, 600)],
            num_subnets=4,
            mode='usnet'),
        calib_images=2000)
]
