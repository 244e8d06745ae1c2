# Backbone study, baseline: the CPU demos' scaled-down Mask R-CNN (mmdet's
# ResNet-50 at 1/4 width, base_channels=16, from scratch; 64-channel FPN and
# heads, anchors 16-256 px) on the embedded multi-scale dataset (6 classes,
# up to 100 detections per image), the 6-epoch CPU study schedule. Every
# study config inherits this one and changes only what its design changes.
# Evaluated by tools/analysis/study.py (or tools/analysis/scale_benchmark.py)
# at test short sides 128-512 around the training scale 256: the scale
# stress test (ELASTIC 4.2, fig. 7).
_base_ = [
    '../../_base_/models/mask_rcnn_fpn_cpu_demo.py',
    '../../_base_/datasets/coco_multiscale.py',
    '../../_base_/schedules/cpu_study_6e.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

model = dict(
    roi_head=dict(
        bbox_head=dict(num_classes=6), mask_head=dict(num_classes=6)),
    test_cfg=dict(rcnn=dict(max_per_img=100)))
test_cfg = dict(type='ScaleSweepTestLoop', scales=[128, 192, 256, 384, 512])
randomness = dict(seed=0)
