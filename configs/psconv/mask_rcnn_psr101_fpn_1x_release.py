# Mask R-CNN, PS-ResNet-101 + FPN, 1x: the PSConv release's trained model
# (d-li14/PSConv model zoo: box / mask AP 41.6 / 37.4 on COCO val2017),
# evaluated in mmdet 3 as the release's mmdet 1.x fork evaluated it. Convert
# its checkpoint, then test:
#   python tools/model_converters/psconv_detector_release.py \
#       mask_rcnn_r101_fpn_1x.pth \
#       checkpoints/mask_rcnn_psr101_fpn_1x_release.pth
#   python tools/test.py \
#       configs/psconv/mask_rcnn_psr101_fpn_1x_release.py \
#       checkpoints/mask_rcnn_psr101_fpn_1x_release.pth
# Inference as in ./mask_rcnn_psr50_fpn_1x_release.py; the backbone of
# ./mask_rcnn_psr101_fpn_1x.py.
_base_ = './mask_rcnn_psr50_fpn_1x_release.py'

model = dict(backbone=dict(depth=101))
