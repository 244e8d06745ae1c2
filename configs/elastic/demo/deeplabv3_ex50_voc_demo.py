# DeepLabv3 + Elastic-ResNeXt-50 (../deeplabv3_ex50_32x4d_os16_voc12aug.py)
# scaled down to train from scratch on a 2-core CPU in minutes, on the
# embedded VOC-format dataset (python tools/make_voc_demo.py data/voc_demo).
# What differs from the paper config, and why:
# - Elastic-ResNeXt-50 at 1/4 width: 8 groups x 4 (base_channels=16), same
#   (6, 8, 5, 3) Elastic layout, OS16 and multi-grid; plain BN (one process)
#   with PyTorch's momentum 0.1 (the release's 0.05 / 0.0003 suit 33k
#   iterations, not 600), no pretrained weights.
# - the release's ASPP (ElasticASPPHead) at 64 channels, 5 classes
#   (background + VOC ids 1-4).
# - 160x120 images: random scale 0.5-2.0 (uniform), 128x128 crops, decoded
#   with cv2; train split only (no SBD aug set); validation on the images
#   as they are (no 513 canvas); AdamW (steadier than SGD from scratch)
#   with poly decay over 600 iterations (about 3 minutes with
#   OMP_NUM_THREADS=1).
_base_ = '../deeplabv3_ex50_32x4d_os16_voc12aug.py'

data_root = 'data/voc_demo/VOC2012'
crop_size = (128, 128)
max_iters = 600
metainfo = dict(
    classes=('background', 'aeroplane', 'bicycle', 'bird', 'boat'),
    palette=[[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0],
             [0, 0, 128]])
norm_cfg = dict(type='BN', requires_grad=True, momentum=0.1)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        groups=8, base_channels=16, norm_cfg=norm_cfg, init_cfg=None),
    decode_head=dict(
        in_channels=512, channels=64, num_classes=5, norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(160, 160),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='PascalVOCDataset',
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/train.txt',
        pipeline=train_pipeline))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-3, weight_decay=0.01))
param_scheduler = [
    dict(
        type='PolyLR',
        power=0.9,
        eta_min=0.0,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters),
    visualization=dict(draw=False))
env_cfg = dict(cudnn_benchmark=False)
