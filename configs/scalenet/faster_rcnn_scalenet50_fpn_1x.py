# Faster R-CNN, ScaleNet-50 + FPN, 1x (ScaleNet paper 4.4, table 6).
# mmdet's 1x recipe: 12 epochs, SGD lr 0.02 for 16 images (8 GPUs x 2), LR
# steps at epochs 8 and 11, COCO at data/coco/. Image size from the paper:
# shorter edge 800, longer edge at most 1200 (table 6's 800/1200 column), in
# training and testing; *_test600.py evaluates the same checkpoint at
# 600/1000. (The paper trained with faster-rcnn.pytorch for 10 epochs; msdet
# uses mmdet's FPN 1x recipe, like its other configs.)
# ImageNet-pretrained ScaleNet-50 weights are a local file you bring (see
# model_zoo.md); to train from scratch set model.backbone.init_cfg=None,
# norm_eval=False, frozen_stages=-1.
# SA blocks resample as the reference release does (resample='release':
# bilinear where a pooled map does not divide its input), as its ImageNet
# weights were trained; resample='nearest' is the paper's (3.1).
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='ScaleNet',
        depth=50,
        resample='release',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/scalenet50_imagenet.pth')))

image_scale = (1200, 800)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
