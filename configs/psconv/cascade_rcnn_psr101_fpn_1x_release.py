# Cascade R-CNN, PS-ResNet-101 + FPN, 1x: the PSConv release's trained model
# (d-li14/PSConv model zoo: box AP 43.8 on COCO val2017), evaluated in mmdet 3
# as the release's mmdet 1.x fork evaluated it. Convert its checkpoint, then
# test:
#   python tools/model_converters/psconv_detector_release.py \
#       cascade_rcnn_r101_fpn_1x.pth \
#       checkpoints/cascade_rcnn_psr101_fpn_1x_release.pth
#   python tools/test.py \
#       configs/psconv/cascade_rcnn_psr101_fpn_1x_release.py \
#       checkpoints/cascade_rcnn_psr101_fpn_1x_release.pth
# Inference as in ./cascade_rcnn_psr50_fpn_1x_release.py; the backbone of
# ./cascade_rcnn_psr101_fpn_1x.py.
_base_ = './cascade_rcnn_psr50_fpn_1x_release.py'

model = dict(backbone=dict(depth=101))
