# The CPU study schedule: 6 epochs = 600 iterations on the 400-image
# multi-scale set at batch 4 (about 10 minutes of a 2-core CPU for the
# 1/4-width ResNet-50 Mask R-CNN; model_zoo.md, "Design studies"). AdamW
# (steadier than SGD from scratch), linear warm-up over 100 iterations, LR
# x0.1 for the last epoch. Validation once, at the end.
# tools/analysis/study.py --epochs N rescales it.
max_epochs = 6
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs,
    val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[5], gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=4)
