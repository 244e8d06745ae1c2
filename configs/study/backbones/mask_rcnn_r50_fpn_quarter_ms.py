# Backbone study, baseline: Mask R-CNN with mmdet's ResNet-50 at 1/4 width
# (base_channels=16) from scratch on the embedded multi-scale dataset, the
# CPU study schedule; every study config inherits this one and changes only
# what its design changes. Evaluated by tools/analysis/study.py (or
# tools/analysis/scale_benchmark.py) at test short sides 128-512 around the
# training scale 256: the scale stress test (ELASTIC 4.1.2, fig. 7).
_base_ = [
    '../../_base_/models/mask_rcnn_r50_fpn_quarter.py',
    '../../_base_/datasets/coco_multiscale.py',
    '../../_base_/schedules/schedule_cpu_study.py',
    'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

model = dict(
    roi_head=dict(
        bbox_head=dict(num_classes=6), mask_head=dict(num_classes=6)))
test_cfg = dict(type='ScaleSweepTestLoop', scales=[128, 192, 256, 384, 512])

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=1, max_keep_ckpts=1))
# RNG states in checkpoints: a resumed run continues exactly.
custom_hooks = [dict(type='RNGStateHook')]
randomness = dict(seed=0)
