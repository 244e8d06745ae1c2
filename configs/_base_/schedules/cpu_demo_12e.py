# Schedule and runtime of the CPU demos, which train from scratch: 12
# epochs of AdamW (steadier than SGD from scratch) with gradient clipping,
# 100 iterations of linear warm-up, LR steps at epochs 9 and 11; validation
# and one checkpoint at the end, a log line every 10 iterations. The LR is
# set for batch 4 and not rescaled.
_base_ = ['./schedule_1x.py', '../default_runtime.py']

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[9, 11], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs))
auto_scale_lr = dict(enable=False, base_batch_size=4)
