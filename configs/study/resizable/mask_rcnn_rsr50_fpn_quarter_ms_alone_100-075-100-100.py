# Resizable study: the spatial configuration (1.0, 0.75, 1.0, 1.0)
# trained alone (Resizable paper 4.1, "individually trained"): the
# super-network's backbone with one factor per stage, so it always runs
# this configuration (one BN per stage position, no sub-network switching),
# same detector, data and schedule.
_base_ = './mask_rcnn_rsr50_fpn_quarter_ms_super.py'

model = dict(
    backbone=dict(resize_factors=[[1.0], [0.75], [1.0], [1.0]]))
custom_hooks = []
train_cfg = dict(type='EpochBasedTrainLoop')
test_cfg = dict(
    subnets=[dict(resize1=1.0, resize2=0.75, resize3=1.0, resize4=1.0)])
model_wrapper_cfg = dict(find_unused_parameters=False)
