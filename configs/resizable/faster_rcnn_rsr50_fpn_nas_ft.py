# Resizable-NAS fine-tune (paper 3.3, table 4 "ft"): the sub-network chosen
# from the lookup table (tools/analysis/resizable_nas.py writes a copy of
# this file with its choice) trains alone, from the super-network's weights
# (load_from: the faster_rcnn_rsr50_fpn_1x.py checkpoint), all other
# settings as the super-network's. The paper fine-tunes 15 epochs after 100
# on ImageNet (15%); here 2 epochs after the 1x schedule's 12, at the 1x
# schedule's final learning rate (0.0002).
# The placeholder target is the 2.0 GFLOPs (224x224 backbone) configuration
# of model_zoo.md's table-1 list.
_base_ = './faster_rcnn_rsr50_fpn_1x.py'

target = dict(resize1=0.75, resize2=0.875, resize3=1.0, resize4=1.0)
load_from = 'work_dirs/faster_rcnn_rsr50_fpn_1x/epoch_12.pth'
model = dict(backbone=dict(init_cfg=None))

custom_hooks = [
    dict(
        type='SubnetSwitchHook',
        sampler=dict(
            type='FairSpatialSampler', target=target,
            switch_at=dict(iter=0)),
        calib_images=2000)
]
train_cfg = dict(max_epochs=2, val_interval=1)
optim_wrapper = dict(optimizer=dict(lr=0.0002))
param_scheduler = []
