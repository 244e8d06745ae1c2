# Cascade Mask R-CNN, PS-ResNeXt-101 (32x4d) + FPN, 1x: the PSConv release's
# trained model (d-li14/PSConv model zoo: box / mask AP 45.3 / 38.9 on COCO
# val2017), evaluated in mmdet 3 as the release's mmdet 1.x fork evaluated it.
# Convert its checkpoint, then test:
#   python tools/model_converters/psconv_detector_release.py \
#       cascade_mask_rcnn_x101_32x4d_fpn_1x.pth \
#       checkpoints/cascade_mask_rcnn_psx101_32x4d_fpn_1x_release.pth
#   python tools/test.py \
#       configs/psconv/cascade_mask_rcnn_psx101_32x4d_fpn_1x_release.py \
#       checkpoints/cascade_mask_rcnn_psx101_32x4d_fpn_1x_release.pth
# Inference as in ./cascade_mask_rcnn_psr50_fpn_1x_release.py; the backbone of
# ./cascade_mask_rcnn_psx101_32x4d_fpn_1x.py.
_base_ = './cascade_mask_rcnn_psr50_fpn_1x_release.py'

model = dict(
    backbone=dict(type='PSResNeXt', depth=101, groups=32, base_width=4))
