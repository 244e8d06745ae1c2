# Mask R-CNN, PS-ResNet-50 + FPN, 1x schedule (PSConv paper 4.3, table 7).
# mmdet's 1x: 12 epochs, SGD lr 0.02 for 16 images (8 GPUs x 2), LR steps at
# epochs 8 and 11, (1333, 800) input, COCO at data/coco/.
# ImageNet-pretrained PS-ResNet-50 weights are a local file you bring
# (see model_zoo.md); for training from scratch set
# model.backbone.init_cfg=None, norm_eval=False, frozen_stages=-1.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='PSResNet',
        depth=50,
        ps_cfg=dict(pattern=(1, 2, 1, 4)),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/psresnet50_imagenet.pth')))
