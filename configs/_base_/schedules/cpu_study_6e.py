# The CPU study schedule: the CPU demo schedule (cpu_demo_12e.py: AdamW,
# 100 iterations of warm-up, validation at the end) over 6 epochs = 600
# iterations on the 400-image multi-scale set at batch 4, about 10 minutes
# of a 2-core CPU for the 1/4-width ResNet-50 Mask R-CNN (model_zoo.md,
# "Design studies"); LR x0.1 for the last epoch. A checkpoint after every
# epoch, only the latest kept, so an interrupted run resumes.
# tools/analysis/study.py --epochs N rescales it.
_base_ = './cpu_demo_12e.py'

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[5], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=1, max_keep_ckpts=1))
