# The ELASTIC release's trained DeepLabv3 with ResNeXt-50 on VOC 2012
# aug (table 5: 75.29 mIoU), evaluated in mmseg. Convert its checkpoint:
#   python tools/model_converters/elastic_voc_release.py \
#       deeplab_resnext50_pascal_v3_original_epoch50.pth \
#       checkpoints/deeplabv3_x50_32x4d_voc12aug_release.pth
#   python tools/test.py \
#       configs/elastic/deeplabv3_x50_32x4d_os16_voc12aug_release.py \
#       checkpoints/deeplabv3_x50_32x4d_voc12aug_release.pth
# The converted segmentor computes the release's logits (float tolerance);
# the evaluation is the training config's (single scale, each val image
# centred in a 513x513 canvas of the mean pixel), whose header lists what
# differs from the release's segment.py. No ImageNet checkpoint is needed.
_base_ = './deeplabv3_x50_32x4d_os16_voc12aug.py'

model = dict(backbone=dict(init_cfg=None))
