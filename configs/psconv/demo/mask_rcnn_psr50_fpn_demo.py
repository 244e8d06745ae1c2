# The main path (Mask R-CNN, PS-ResNet-50 + FPN: ../mask_rcnn_psr50_fpn_1x.py)
# scaled down to train from scratch on a 2-core CPU in minutes, on the
# embedded synthetic COCO dataset (python tools/make_coco_demo.py
# data/coco_demo). What differs from the main config, and why:
# - PS-ResNet-50 at 1/4 width (base_channels=16): same depth, same PSConv
#   blocks, ~1/16 of the FLOPs; no pretrained weights, so BN trains
#   (norm_eval=False) and no stage is frozen.
# - FPN / heads at 64-256 channels, anchors scaled for 256 px images.
# - 256 x 256 inputs, 3 classes, AdamW (steadier than SGD from scratch),
#   a short step schedule (12 epochs).
# The scaled-down detector, the dataset and the schedule are the CPU demos'
# shared ones in configs/_base_/; this file adds the backbone.
_base_ = [
    '../../_base_/models/mask_rcnn_fpn_cpu_demo.py',
    '../../_base_/datasets/coco_demo_instance.py',
    '../../_base_/schedules/cpu_demo_12e.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(type='PSResNet', ps_cfg=dict(pattern=(1, 2, 1, 4))))
randomness = dict(seed=0)
