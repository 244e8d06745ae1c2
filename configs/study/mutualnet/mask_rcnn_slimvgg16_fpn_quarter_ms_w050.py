# MutualNet study, independently trained width 0.5 (MutualNet 4.1-4.3's
# "independently-trained networks"): exactly the width-0.5 sub-network of
# the slimmable detector (same layers, first channels of every conv, the
# same FPN with sliced lateral convs), trained alone at 256 px with plain BN
# training, no sub-network switching. Evaluated like the slimmable models
# (BN recalibrated on 100 training images per test scale), so the
# comparison isolates training. The paper trains independent networks at
# each resolution; here only at 256 px.
_base_ = './mask_rcnn_slimvgg16_fpn_quarter_ms_mutualnet.py'

model = dict(backbone=dict(width_range=(0.5, 0.5)))
custom_hooks = []
train_cfg = dict(type='EpochBasedTrainLoop')
test_cfg = dict(widths=[0.5])
