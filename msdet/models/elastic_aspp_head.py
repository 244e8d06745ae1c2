"""DeepLabv3's ASPP head as the ELASTIC release builds it (ELASTIC paper
4.3; allenai/elastic ``models/resnext.py``, class ``ASPP``). Needs
MMSegmentation (``pip install 'msdet[seg]'``)."""
from mmcv.cnn import ConvModule
from mmengine.registry import MODELS
from mmseg.models.decode_heads import ASPPHead


@MODELS.register_module()
class ElasticASPPHead(ASPPHead):
    """DeepLabv3 ASPP (Chen et al. 2017, 3.3) as in the ELASTIC release:
    mmseg's ``ASPPHead`` with the fusion conv 1x1 instead of 3x3 and no
    dropout before the classifier.

    Branches (256 channels each in the release): a 1x1 conv and 3x3 convs
    at rates (6, 12, 18) on the backbone's last map, and image pooling
    (global average pool, 1x1 conv, broadcast back), each conv without bias
    followed by BN and ReLU; their concatenation -> 1x1 conv (no bias), BN,
    ReLU -> 1x1 classifier with bias. Logits are upsampled bilinearly with
    ``align_corners=True``, as the release does (default here). The
    release concatenates the image-pooling branch last, mmseg first: the
    same function up to the order of the fusion conv's input channels,
    which ``tools/model_converters/elastic_voc_release.py`` reorders.

    Args:
        dilations (tuple[int]): rates of the branches (1: the 1x1 conv).
            Default (1, 6, 12, 18), the release's.
        dropout_ratio (float): before the classifier; default 0 (none, as
            in the release).
        align_corners (bool): default True (the release's upsampling).
        **kwargs: mmseg ``BaseDecodeHead`` arguments (``in_channels``,
            ``channels``, ``num_classes``, ``norm_cfg``, ``loss_decode``,
            ...).
    """

    def __init__(self,
                 dilations=(1, 6, 12, 18),
                 dropout_ratio=0.0,
                 align_corners=True,
                 **kwargs):
        super().__init__(dilations=dilations, dropout_ratio=dropout_ratio,
                         align_corners=align_corners, **kwargs)
        self.bottleneck = ConvModule(
            (len(dilations) + 1) * self.channels,
            self.channels,
            1,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)
