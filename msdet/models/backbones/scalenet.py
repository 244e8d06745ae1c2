"""ScaleNet (Li et al., CVPR 2019, sections 3.1-3.3, table 1)."""
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmdet.models.backbones.resnet import Bottleneck, ResNet
from mmengine.registry import MODELS

from ...ops.feature_resize import cpu_inference, max_pool
from ...ops.scale_aggregation import RESAMPLE, SCALES, ScaleAggregation
from ...utils.validation import check_choice
from .base import ResNetFamily, check_resnet_args
from .scalenet_structure import load_structure


class SABottleneck(Bottleneck):
    """ResNet bottleneck whose 3x3 conv is a scale aggregation (SA) block
    (paper 3.3, fig. 3).

    ``conv1``/``norm1``, ``norm3``, the shortcut and the forward are the
    parent's. Rebuilt: ``conv2`` is a ``ScaleAggregation`` (eq. 1-4) of width
    ``sum(C_l)``; ``norm2`` normalises that concatenation channel by channel,
    i.e. BN after each scale's upsample, then the parent's ReLU (fig. 3);
    ``conv3`` expands from ``sum(C_l)`` channels; plugins after ``conv2``
    are rebuilt at that width.

    The block is stride 1 throughout: a block with ``pool_stride > 1``
    max-pools its input first (kernel = stride, table 1's "2x2 max pool,
    stride 2", "as done in DenseNets", paper 3.3), so the shortcut projection
    is a stride-1 1x1 conv on the pooled input. With ``resample='nearest'``
    this pool rounds up, so stage sizes equal mmdet's ResNet's for any input
    size (msdet's choice); with ``'release'`` it rounds down, as the
    reference release does. Both agree at even sizes, which is every size
    at 224 px and every size of mmdet's 32-padded batches.

    Args:
        branch_channels (Sequence[int]): ``C_l`` of each scale (its entry of
            the structure, ``scalenet_structure``).
        design_size (int): side of the block's input at a 224x224 image.
        pool_stride (int): the stage's stride, on its first block; 1 else.
        scales (Sequence[int]): pooling factors of the scales.
        resample (str): ``'nearest'`` (paper) or ``'release'``: the SA
            block's upsampling (``ScaleAggregation``) and this pool's
            rounding.
    """

    def __init__(self, inplanes, planes, branch_channels, design_size,
                 pool_stride=1, scales=SCALES, resample='nearest', **kwargs):
        if kwargs.get('dcn') is not None:
            raise ValueError('SABottleneck: dcn replaces the 3x3 conv that '
                             'the SA block replaces; use dcn=None.')
        super().__init__(inplanes, planes, **kwargs)
        width = sum(branch_channels)
        self.conv2 = ScaleAggregation(
            planes, branch_channels, design_size, scales, self.dilation,
            self.conv_cfg, resample)
        self.pool = nn.MaxPool2d(
            pool_stride, pool_stride, ceil_mode=resample == 'nearest') \
            if pool_stride > 1 else None
        self.norm2_name, norm2 = build_norm_layer(
            self.norm_cfg, width, postfix=2)
        self.add_module(self.norm2_name, norm2)
        self.conv3 = build_conv_layer(
            self.conv_cfg, width, planes * self.expansion, kernel_size=1,
            bias=False)
        if self.with_plugins:
            for name in self.after_conv2_plugin_names:
                delattr(self, name)
            self.after_conv2_plugin_names = self.make_block_plugins(
                width, self.after_conv2_plugins)

    def forward(self, x):
        return super().forward(x if self.pool is None else self._pool(x))

    def _pool(self, x):
        """``self.pool(x)``; without autograd on CPU by strided maxima
        (``max_pool``; aten's NCHW kernel also computes indices and is
        several times slower), a side that ``ceil_mode`` rounds up
        replicate-padded (a repeated pixel leaves a maximum unchanged)."""
        if not cpu_inference(x):
            return self.pool(x)
        k = self.pool.kernel_size
        h, w = x.shape[-2:]
        if self.pool.ceil_mode and (h % k or w % k):
            x = F.pad(x, (0, -w % k, 0, -h % k), mode='replicate')
        return max_pool(x, k)


@MODELS.register_module()
class ScaleNet(ResNetFamily, ResNet):
    """ScaleNet: mmdet's ResNet with every bottleneck 3x3 conv an SA block
    (paper 3.3, table 1).

    Stem, block counts, 1x1 widths and stage outputs are ResNet's; each SA
    block's scale widths come from ``structure``; a stage's stride is a max
    pool in front of its first block (see ``SABottleneck``). All arguments
    of mmdet's ``ResNet`` keep their meaning (``out_indices``,
    ``frozen_stages``, ``norm_eval``, ``strides``/``dilations`` for
    segmentation, ``conv_cfg``/``norm_cfg``, ``init_cfg``...); ``dcn`` and
    ``avg_down`` do not apply and are refused.

    Args:
        depth (int): 50, 101 or 152 (table 1).
        structure: ``None`` for the published allocation of ``depth``, a
            published allocation's name (``'scalenet50_light'``, the
            paper's ScaleNet-50-light, table 2; or ``'scalenet50'``,
            ``'scalenet101'``, ``'scalenet152'``), a JSON structure file
            (e.g. from ``tools/allocate_neurons.py``), a list of
            ``[C_1..C_L, side]`` entries, a dict with ``blocks``, or
            ``dict(seed=C)`` for the seed network of the neuron allocation
            (``C * 2**i`` channels per scale in stage ``i``, paper 3.2). See
            ``scalenet_structure``.
        scales (Sequence[int]): pooling factors, ``(1, 2, 4, 7)`` (paper).
        resample (str): ``'nearest'`` (default): the paper's nearest
            upsampling (3.1). ``'release'``: exactly the reference
            release's resampling (bilinear where a pooled map does not
            divide its input, strided pools rounding down), which its
            ImageNet weights were trained with;
            ``tools/model_converters/scalenet_release.py`` sets it. See
            ``ScaleAggregation`` and ``SABottleneck``.
    """
    arch_settings = {
        50: (SABottleneck, (3, 4, 6, 3)),
        101: (SABottleneck, (3, 4, 23, 3)),
        152: (SABottleneck, (3, 8, 36, 3)),
    }

    def __init__(self, depth, structure=None, scales=SCALES,
                 resample='nearest', **kwargs):
        # the structure is read before the stages are built: check first
        check_resnet_args('ScaleNet', self.arch_settings, depth, **kwargs)
        self.resample = check_choice('ScaleNet', 'resample', resample,
                                     RESAMPLE)
        for arg in ('dcn', 'avg_down'):
            if kwargs.get(arg):
                raise ValueError(
                    f'ScaleNet: {arg}={kwargs[arg]!r} is not supported: the '
                    'SA block replaces the 3x3 conv and the shortcut follows'
                    " the stage's max pool (paper 3.3).")
        stage_blocks = self.arch_settings[depth][1]
        num_stages = kwargs.get('num_stages', 4)
        self.scales = tuple(scales)
        # a structure covers the whole depth; unbuilt stages keep stride 2
        self.structure = load_structure(
            structure, depth, stage_blocks, self.scales,
            tuple(kwargs.get('strides', (1, 2, 2, 2))) + (2, ) *
            (len(stage_blocks) - num_stages))
        super().__init__(depth=depth, **kwargs)

    def block_args(self, stage, num_blocks, stride, **stage_args):
        """Each SA block its structure entry; the stage's stride is the first
        block's pool (its shortcut projection is then stride 1)."""
        start = sum(self.arch_settings[self.depth][1][:stage])
        return [
            dict(branch_channels=entry[:-1], design_size=entry[-1],
                 pool_stride=stride if j == 0 else 1, stride=1,
                 scales=self.scales, resample=self.resample)
            for j, entry in enumerate(self.structure[start:start + num_blocks])
        ]
