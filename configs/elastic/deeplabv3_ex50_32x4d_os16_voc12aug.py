# DeepLabv3 on PASCAL VOC 2012 aug with Elastic-ResNeXt-50 (32x4d), output
# stride 16 (ELASTIC paper 4.3, table 5: 77.70 mIoU; the original ResNeXt-50
# 75.29). The paper follows DeepLabv3 (Chen et al. 2017, "[3]") without bells
# and whistles; this config does too, with mmseg's own ASPPHead,
# PascalVOCDataset and IoUMetric:
# - backbone: strides (1, 2, 2, 1), dilations (1, 1, 1, 2) -> OS16, for
#   training and evaluation; multi-grid (1, 2, 4) in the last stage, i.e.
#   rates 2 * (1, 2, 4) = (2, 4, 8) as in [3]; BN trained (norm_eval=False).
# - head: ASPP rates (6, 12, 18) + a 1x1 branch + image pooling, 256
#   channels, no auxiliary head. mmseg's ASPPHead fuses with a 3x3 conv
#   where [3] uses a 1x1 one, and applies dropout 0.1 before the classifier
#   (as [3]'s released code does).
# - data: VOC 2012 train + SBD aug (10582 images, mmseg's voc_aug converter)
#   at data/VOCdevkit/VOC2012; random scale 0.5-2.0 (VOC's long side is 500
#   px, so the 500x500 box scales each image by the sampled ratio), 513x513
#   crop padded with the mean pixel / ignore label, flip; no photometric
#   augmentation. Validation on the original val images, single scale.
# - schedule: batch 16 (4 GPUs x 4), 50 epochs = 50 * 10582 / 16 -> 33069
#   iterations, SGD momentum 0.9, lr 0.007 with poly decay (power 0.9),
#   weight decay 5e-4 for ResNeXt backbones (1e-4 for ResNets; paper 4.3).
# The ImageNet-pretrained backbone is a local file you bring (see
# model_zoo.md); msdet downloads nothing.
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
max_iters = -(-num_epochs * train_images // batch_size)  # 33069
norm_cfg = dict(type='SyncBN', requires_grad=True)

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
        in_channels=2048,
        in_index=0,
        channels=256,
        dilations=(1, 6, 12, 18),
        num_classes=21,
        norm_cfg=norm_cfg),
    auxiliary_head=None)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(500, 500),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
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
