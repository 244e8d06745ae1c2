# DeepLabv3 on PASCAL VOC 2012 aug with Elastic-ResNeXt-50 (32x4d), output
# stride 16 (ELASTIC paper 4.3, table 5: 77.70 mIoU; the original ResNeXt-50
# 75.29). The paper follows DeepLabv3 (Chen et al. 2017, "[3]") without bells
# and whistles; this config follows the release's segment.py (allenai/elastic,
# trained on one GPU), with mmseg's PascalVOCDataset and IoUMetric:
# - backbone: strides (1, 2, 2, 1), dilations (1, 1, 1, 2) -> OS16, for
#   training and evaluation; multi-grid (1, 2, 4) in the last stage, i.e.
#   rates 2 * (1, 2, 4) = (2, 4, 8) as in [3]; BN trained (norm_eval=False)
#   with momentum 0.05 (the release's in segmentation).
# - head: ElasticASPPHead, the release's ASPP: rates (6, 12, 18) + a 1x1
#   branch + image pooling, 256 channels, BN momentum 0.0003, fused by a 1x1
#   conv (mmseg's ASPPHead: 3x3), no dropout (mmseg: 0.1), logits upsampled
#   with align_corners=True; classifier weights initialised with He's
#   fan-out normal (std sqrt(2 / 21)) as the release's; no auxiliary head.
# - loss: cross-entropy averaged over the labelled pixels (avg_non_ignore;
#   mmseg's default divides by all pixels, the 255 padding included).
# - data: VOC 2012 train + SBD aug (10582 images, mmseg's voc_aug converter)
#   at data/VOCdevkit/VOC2012, decoded with PIL; scale by a factor drawn
#   log-uniformly in [0.5, 2] (PIL Lanczos, labels nearest), pad to 513 on
#   all sides with the mean pixel / label 255, random 513x513 crop, flip; no
#   photometric augmentation. Validation on the original val images, each
#   centred in a 513x513 canvas of the mean pixel, single scale.
# - schedule: batch 16 (4 GPUs x 4, SyncBN: the release's batch statistics
#   over 16), 50 epochs of ceil(10582 / 16) = 662 batches -> 33100
#   iterations, SGD momentum 0.9, lr 0.007 with poly decay (power 0.9) per
#   iteration, weight decay 5e-4 on every parameter for ResNeXt backbones
#   (1e-4 for ResNets; paper 4.3).
# What still differs from the release: (1) the classifier's bias starts at 0
# (the release: PyTorch's default U(-1/16, 1/16)); (2) where 513 - side is
# odd the release places the image 1 pixel lower/righter at random, here
# always the upper/left position (training and evaluation); (3) the release
# flips before scaling (same distribution); (4) its last batch of an epoch
# holds 6 images, mmseg's infinite sampler always 16 (33100 x 16 samples
# instead of 50 x 10582, +0.09%); (5) float rounding (SyncBN, mmseg's
# normalisation in 0-255 units).
# The ImageNet-pretrained backbone is a local file you bring (see
# model_zoo.md); msdet downloads nothing. The release's trained VOC models:
# deeplabv3_*_os16_voc12aug_release.py.
_base_ = [
    'mmseg::_base_/models/deeplabv3_r50-d8.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

crop_size = (513, 513)
num_epochs = 50
train_images = 10582
batch_size = 16
max_iters = num_epochs * -(-train_images // batch_size)  # 33100
# The mean pixel in the loaded (BGR) image's channel order: 0 once the data
# preprocessor has converted to RGB and normalised.
mean_bgr = (103.53, 116.28, 123.675)
norm_cfg = dict(type='SyncBN', requires_grad=True, momentum=0.05)

model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='ElasticResNeXt',
        depth=50,
        groups=32,
        base_width=4,
        elastic=True,
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        multi_grid=(1, 2, 4),
        out_indices=(3, ),
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/elastic_resnext50_32x4d_imagenet.pth')),
    decode_head=dict(
        type='ElasticASPPHead',
        in_channels=2048,
        in_index=0,
        channels=256,
        dilations=(1, 6, 12, 18),
        dropout_ratio=0.0,
        num_classes=21,
        norm_cfg=dict(type='SyncBN', requires_grad=True, momentum=0.0003),
        align_corners=True,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        init_cfg=dict(
            type='Kaiming',
            mode='fan_out',
            nonlinearity='relu',
            distribution='normal',
            override=dict(name='conv_seg'))),
    auxiliary_head=None)

train_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='LoadAnnotations'),
    dict(type='RandomLogRescale', ratio_range=(0.5, 2.0)),
    dict(type='CenterPad', size=crop_size, pad_val=mean_bgr, seg_pad_val=255),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='CenterPad', size=crop_size, pad_val=mean_bgr),
    dict(type='LoadAnnotations'),
    dict(
        type='PackSegInputs',
        meta_keys=('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                   'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                   'reduce_zero_label', 'img_padding_size'))
]
data_root = 'data/VOCdevkit/VOC2012'
train_dataloader = dict(
    batch_size=batch_size // 4,
    dataset=dict(datasets=[
        dict(
            type='PascalVOCDataset',
            data_root=data_root,
            data_prefix=dict(
                img_path='JPEGImages', seg_map_path='SegmentationClass'),
            ann_file='ImageSets/Segmentation/train.txt',
            pipeline=train_pipeline),
        dict(
            type='PascalVOCDataset',
            data_root=data_root,
            data_prefix=dict(
                img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
            ann_file='ImageSets/Segmentation/aug.txt',
            pipeline=train_pipeline)
    ]))
val_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.007, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(
        type='PolyLR',
        power=0.9,
        eta_min=0.0,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
# msdet's runtime components (as configs/_base_/default_runtime.py for COCO):
# atomic checkpoint files, a checkpoint that does not fit refused up front,
# every rank's RNG states in checkpoints, DDP that also runs without CUDA.
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False,
                    interval=5000),
    checkpoint_fit=dict(type='CheckpointFitHook'),
    rng_state=dict(type='RNGStateHook'))
model_wrapper_cfg = dict(type='CPUCompatibleDDP')
