# The main path: Mask R-CNN, PS-ResNet-50 + FPN, 1x on COCO 2017 (PSConv
# paper 4.3, table 7). The config lives with the other PSConv configs,
# psconv/mask_rcnn_psr50_fpn_1x.py; this file is that config.
_base_ = './psconv/mask_rcnn_psr50_fpn_1x.py'
