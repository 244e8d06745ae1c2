# DeepLabv3, slimmable VGG-16 (MutualNet, Yang et al.), VOC 2012 aug.
# Why output stride 32 and not the recipe's 16: VGG-16 has no residual
# stages to dilate; SlimmableVGG keeps VGG's five max-pools (strides 2..32,
# MutualNet 4.3 uses it as an FPN detector backbone) and has no dilation
# argument, so OS16 would need pool5 removed and conv5 dilated, a different
# network than the one MutualNet trains. This config runs the ASPP head on
# conv5_3 at stride 32, the full-width sub-network (width 1.0; use
# msdet.ops.set_subnet / the scale-sweep tool for other widths), plain BN
# (SlimmableVGG's shared BN is recalibrated per width, MutualNet 3.1, and
# does not support SyncBN). Otherwise the recipe of
# ../elastic/deeplabv3_ex50_32x4d_os16_voc12aug.py.
_base_ = '../elastic/deeplabv3_ex50_32x4d_os16_voc12aug.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SlimmableVGG',
        depth=16,
        out_indices=(4, ),
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/slimvgg16_imagenet.pth')),
    decode_head=dict(in_channels=512))
optim_wrapper = dict(optimizer=dict(weight_decay=1e-4))
