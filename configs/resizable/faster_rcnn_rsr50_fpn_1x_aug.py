# Resizable-Aug (paper 3.4, table 2): the super-network recipe of
# faster_rcnn_rsr50_fpn_1x.py with scheduled switching: fair sampling of
# spatial configurations (algorithm 1) until the scheduled point, then only
# the target network (the plain ResNet-50, all factors 1.0) trains, as in
# normal optimisation. The paper gives no switching point for detection;
# here it is the first LR step of the 1x schedule (epoch 8 of 12).
# The target's BN is recalibrated (post-statistics) before validation and
# after each epoch (appendix B.2, table 5: with BN calibration).
_base_ = './faster_rcnn_rsr50_fpn_1x.py'

custom_hooks = [
    dict(
        type='SubnetSwitchHook',
        sampler=dict(
            type='FairSpatialSampler',
            target=dict(resize1=1.0, resize2=1.0, resize3=1.0, resize4=1.0),
            switch_at=dict(epoch=8)),
        calib_images=2000)
]
