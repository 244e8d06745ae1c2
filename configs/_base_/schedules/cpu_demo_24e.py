# The CPU demo schedule (cpu_demo_12e.py) over 24 epochs, LR steps at
# epochs 18 and 22.
_base_ = './cpu_demo_12e.py'

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[18, 22], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
