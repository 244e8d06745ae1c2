# Resizable-Adapt (paper 3.5, 4.4) on the CPU demo super-network
# (./faster_rcnn_rsr50_fpn_demo.py, embedded synthetic COCO data); the
# commands and numbers are in model_zoo.md ("Resizable-Adapt"):
#   python tools/make_coco_demo.py data/coco_demo
#   python tools/train.py \
#       configs/resizable/demo/faster_rcnn_rsr50_fpn_demo.py
#   python tools/analysis/resizable_nas.py \
#       configs/resizable/demo/faster_rcnn_rsr50_fpn_demo.py SUPERNET \
#       --configurations ... --work-dir work_dirs/adapt_demo/nas
#   python tools/analysis/resizable_adapt_targets.py THIS_CONFIG SUPERNET \
#       --lookup-table work_dirs/adapt_demo/nas/lookup_table.json \
#       --work-dir work_dirs/adapt_demo/targets
#   python tools/train.py \
#       work_dirs/adapt_demo/targets/faster_rcnn_rsr50_fpn_adapt_demo.py
#   python tools/analysis/resizable_adapt_report.py \
#       work_dirs/adapt_demo/targets/faster_rcnn_rsr50_fpn_adapt_demo.py \
#       LEARNER_CKPT
# What differs from ../faster_rcnn_rsr50_fpn_adapt.py: the demo
# super-network; as candidates the 14 configurations of the demo lookup table
# (factors {0.5, 0.75, 1.0}, cheapest first, as the targets tool orders
# them); a 64-wide learner; 20 epochs of the 160 training images (batch 8).
_base_ = './faster_rcnn_rsr50_fpn_demo.py'

model = dict(
    _delete_=True,
    type='ResizableAdaptDetector',
    data_preprocessor={{_base_.model.data_preprocessor}},
    detector={{_base_.model}},
    supernet_checkpoint='work_dirs/faster_rcnn_rsr50_fpn_demo/epoch_24.pth',
    targets=None,
    learner=dict(
        type='ResizeLearner',
        in_stage='last',
        feat_channels=64,
        configurations=[
            dict(resize1=0.5, resize2=0.5, resize3=0.5, resize4=0.5),
            dict(resize1=0.5, resize2=0.75, resize3=0.75, resize4=0.75),
            dict(resize1=0.75, resize2=0.5, resize3=0.5, resize4=0.5),
            dict(resize1=0.5, resize2=1.0, resize3=1.0, resize4=1.0),
            dict(resize1=0.75, resize2=0.75, resize3=0.75, resize4=0.75),
            dict(resize1=1.0, resize2=0.5, resize3=0.5, resize4=0.5),
            dict(resize1=0.75, resize2=0.75, resize3=1.0, resize4=1.0),
            dict(resize1=1.0, resize2=0.75, resize3=0.75, resize4=0.75),
            dict(resize1=0.75, resize2=1.0, resize3=1.0, resize4=1.0),
            dict(resize1=1.0, resize2=1.0, resize3=0.5, resize4=0.5),
            dict(resize1=1.0, resize2=0.75, resize3=1.0, resize4=1.0),
            dict(resize1=1.0, resize2=1.0, resize3=0.75, resize4=0.75),
            dict(resize1=1.0, resize2=1.0, resize3=1.0, resize4=0.5),
            dict(resize1=1.0, resize2=1.0, resize3=1.0, resize4=1.0),
        ]))

# plain training of the learner alone (no sub-network sampling)
custom_hooks = []
max_epochs = 20
train_dataloader = dict(batch_size=8)
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=max_epochs)
model_wrapper_cfg = dict(find_unused_parameters=False)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[15], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
auto_scale_lr = dict(enable=False, base_batch_size=8)
