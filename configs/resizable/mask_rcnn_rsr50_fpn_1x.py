# Mask R-CNN + FPN with a Resizable ResNet-50 super-network, 1x
# (Resizable paper 3.1-3.2, algorithm 1; the paper reports ImageNet only,
# the detector recipe is mmdet's 1x).
# - Backbone: ResizableResNet-50, one resize G(x; s_i) per stage at its first
#   non-stride block (appendix A.1), factors {0.5, 0.625, 0.75, 0.875, 1.0}
#   per stage (5^4 = 625 spatial configurations), scale-aware BN (3.2).
#   Stage outputs are resized back to strides 4-32 for the FPN.
# - Every iteration (SubnetSwitchHook + FairSpatialSampler): len(L) = 5
#   sub-networks on the same mini-batch, every (stage, factor) pair exactly
#   once (fair sampling), gradients summed, one SGD step.
# - BN: one private BN per factor, so BN must train (norm_eval=False); only
#   the stem (before any resize) is frozen (frozen_stages=0). The target
#   (all 1.0) is BN-recalibrated on 2000 training images per epoch.
# - DDP: a sub-network leaves the private BNs of other factors unused.
# - Weights: an ImageNet ResNet-50 converted with
#   tools/model_converters/resizable_resnet.py (each BN copied into every
#   scale-aware BN), a local file you bring.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

resize_factors = [0.5, 0.625, 0.75, 0.875, 1.0]

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResizableResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=0,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        resize_factors=resize_factors,
        restore_outputs=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/resizable_resnet50_imagenet.pth')))

custom_hooks = [
    dict(
        type='SubnetSwitchHook',
        sampler=dict(type='FairSpatialSampler', switch_at=None),
        calib_images=2000)
]
# the sub-networks of an iteration train in msdet's loop (SubnetSwitchHook
# samples them)
train_cfg = dict(type='SubnetEpochBasedTrainLoop')
model_wrapper_cfg = dict(type='CPUCompatibleDDP', find_unused_parameters=True)
