# Resizable-Adapt (Resizable paper 3.5; 4.4, fig. 3d) for Faster R-CNN + FPN
# on COCO: a ResizeLearner routes every image to one spatial configuration
# of the trained, frozen super-network of faster_rcnn_rsr50_fpn_1x.py.
# 1. super-network (SUPERNET: work_dirs/faster_rcnn_rsr50_fpn_1x/epoch_12.pth)
#    python tools/train.py configs/resizable/faster_rcnn_rsr50_fpn_1x.py
# 2. lookup table:
#    python tools/analysis/resizable_nas.py \
#        configs/resizable/faster_rcnn_rsr50_fpn_1x.py SUPERNET \
#        [--configurations ...]
# 3. targets (paper: 50k random training images, every candidate within the
#    FLOPs ceiling on each, the best per image):
#    python tools/analysis/resizable_adapt_targets.py THIS_CONFIG SUPERNET \
#        --lookup-table work_dirs/resizable_nas/lookup_table.json \
#        --max-gflops G --num-images 50000
# 4. learner (TARGETS = work_dirs/resizable_adapt_targets):
#    python tools/train.py TARGETS/faster_rcnn_rsr50_fpn_adapt.py
# 5. report:
#    python tools/analysis/resizable_adapt_report.py \
#        TARGETS/faster_rcnn_rsr50_fpn_adapt.py \
#        work_dirs/faster_rcnn_rsr50_fpn_adapt/epoch_4.pth
# The learner reads the last stage (paper), probed at the cheapest
# configuration; learner.in_stage='stem' reads the stem instead.
# Placeholder candidates: model_zoo.md's table-1 configurations (4.1, 2.8,
# 2.0, 1.1 GFLOPs at 224 px); step 3 writes the real list.
# Learner schedule (not in the paper): AdamW 1e-3 for 16 images, 4 epochs,
# x0.1 at epoch 3; only the learner trains (the super-network is frozen,
# eval-mode BN): mmengine's plain epoch loop, no SubnetSwitchHook.
_base_ = './faster_rcnn_rsr50_fpn_1x.py'

model = dict(
    _delete_=True,
    type='ResizableAdaptDetector',
    data_preprocessor={{_base_.model.data_preprocessor}},
    detector={{_base_.model}},
    supernet_checkpoint='work_dirs/faster_rcnn_rsr50_fpn_1x/epoch_12.pth',
    targets=None,
    learner=dict(
        type='ResizeLearner',
        in_stage='last',
        feat_channels=128,
        configurations=[
            dict(resize1=1.0, resize2=1.0, resize3=1.0, resize4=1.0),
            dict(resize1=0.875, resize2=0.875, resize3=1.0, resize4=1.0),
            dict(resize1=0.75, resize2=0.875, resize3=1.0, resize4=1.0),
            dict(resize1=0.5, resize2=1.0, resize3=1.0, resize4=0.75),
        ]))

# plain training: only the learner, one forward per batch (no sub-network
# sampling, no unused parameters: the frozen super-network has no gradients)
custom_hooks = []
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=4, val_interval=4)
model_wrapper_cfg = dict(find_unused_parameters=False)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=4, milestones=[3],
         gamma=0.1)
]
