# DeepLabv3, PS-ResNet-50 (PSConv, Li et al. ECCV 2020), OS16, VOC 2012 aug.
# Not in the ELASTIC paper: a PSConv backbone under the same DeepLabv3 recipe
# (../elastic/deeplabv3_ex50_32x4d_os16_voc12aug.py), for comparison with
# ELASTIC table 5. Differences:
# - weight decay 1e-4: ELASTIC 4.3 uses 5e-4 for ResNeXt, 1e-4 for ResNets.
# - no multi-grid: PSResNet has no multi_grid argument. Its last stage runs
#   at dilation 2, where every PSConv already mixes the rates 2 * (1, 2, 1,
#   4) = {2, 4, 8} across its channels, the rates multi-grid (1, 2, 4) would
#   give the three blocks.
_base_ = '../elastic/deeplabv3_ex50_32x4d_os16_voc12aug.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='PSResNet',
        depth=50,
        ps_cfg=dict(pattern=(1, 2, 1, 4)),
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        out_indices=(3, ),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/psresnet50_imagenet.pth')))
optim_wrapper = dict(optimizer=dict(weight_decay=1e-4))
