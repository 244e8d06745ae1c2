# Faster R-CNN, ScaleNet-50 + FPN, 1x, tested at shorter edge 600, longer
# edge at most 1000 (ScaleNet paper table 6, 600/1000 column): the model of
# faster_rcnn_scalenet50_fpn_1x.py (train with that config), only the test
# image size differs.
# SA blocks: the release's resampling (resample='release', from the base).
_base_ = './faster_rcnn_scalenet50_fpn_1x.py'

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
