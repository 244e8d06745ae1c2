# The ScaleNet seed network (../faster_rcnn_scalenet50_seed_fpn_1x.py) scaled
# down to train from scratch on a 2-core CPU, on the embedded synthetic COCO
# dataset (python tools/make_coco_demo.py data/coco_demo): the allocation
# pipeline (train seed, tools/allocate_neurons.py, retrain with
# model.backbone.structure=FILE) end to end in minutes.
# What differs from the seed config, and why:
# - ScaleNet-50 at 1/4 width (base_channels=16, seed 16 * 2**i per scale):
#   same depth and SA blocks, far fewer FLOPs; the paper's nearest
#   upsampling (resample='nearest', from scratch).
# - FPN / heads at 64-256 channels, anchors scaled for 256 px images.
# - 256 x 256 inputs, 3 classes, AdamW (steadier than SGD from scratch),
#   a short step schedule (24 epochs).
# The scaled-down detector, the dataset and the schedule are the CPU demos'
# shared ones in configs/_base_/; this file adds the backbone.
_base_ = [
    '../../_base_/models/faster_rcnn_fpn_cpu_demo.py',
    '../../_base_/datasets/coco_demo_detection.py',
    '../../_base_/schedules/cpu_demo_24e.py'
]
custom_imports = dict(imports=['msdet'], allow_failed_imports=False)

model = dict(backbone=dict(type='ScaleNet', structure=dict(seed=16)))
