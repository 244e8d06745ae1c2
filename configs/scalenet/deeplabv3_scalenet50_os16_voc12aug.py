# DeepLabv3, ScaleNet-50 (Li et al., CVPR 2019), OS16, VOC 2012 aug.
# Not in the ELASTIC paper: ScaleNet under the same DeepLabv3 recipe
# (../elastic/deeplabv3_ex50_32x4d_os16_voc12aug.py), for comparison with
# ELASTIC table 5. Differences:
# - weight decay 1e-4 (ELASTIC 4.3 uses 5e-4 for ResNeXt, 1e-4 for ResNets).
# - no multi-grid: ScaleNet has no multi_grid argument; its last stage runs
#   at dilation 2 (every 3x3 conv of its SA blocks dilated, pooling factors
#   unchanged, see msdet/ops/scale_aggregation.py), and its scales already
#   aggregate context at 1/2, 1/4 and 1/7 resolution.
# - SA blocks resample as the reference release does (resample='release':
#   bilinear where a pooled map does not divide its input, strided pools
#   rounding down, e.g. 129 -> 64 at a 513 crop), as its ImageNet weights
#   were trained; resample='nearest' is the paper's (3.1).
_base_ = '../elastic/deeplabv3_ex50_32x4d_os16_voc12aug.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ScaleNet',
        depth=50,
        resample='release',
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        out_indices=(3, ),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/scalenet50_imagenet.pth')))
optim_wrapper = dict(optimizer=dict(weight_decay=1e-4))
