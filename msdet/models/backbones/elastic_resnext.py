"""Elastic-ResNeXt (ELASTIC, Wang et al., CVPR 2019: sections 3.2-3.3,
4.1.1, appendix A-B, fig. 3 left, tables 2, 7, 8 and 10)."""
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmdet.models.backbones.resnext import Bottleneck as _XBottleneck
from mmdet.models.backbones.resnext import ResNeXt
from mmdet.models.layers import SELayer
from mmengine.registry import MODELS

from ...ops.feature_resize import avg_pool2x, upsample2x
from ...utils.validation import check_ints, fail
from .base import ResNetFamily, check_resnet_args


def high_res_groups(owner, groups, high_ratio):
    """Groups (paths) of the high-resolution branch: ``groups * high_ratio``,
    which must be a whole number leaving at least one path to each branch."""
    if isinstance(high_ratio, bool) or \
            not isinstance(high_ratio, (int, float)) or \
            not 0 < groups * high_ratio < groups or \
            groups * high_ratio != int(groups * high_ratio):
        fail(owner, 'high_ratio', high_ratio,
             f'0 < high_ratio < 1 splitting groups={groups!r} into two '
             'whole, non-empty sets of paths (e.g. 0.25, 0.5, 0.75 for 32 '
             'groups; table 7)')
    return int(groups * high_ratio)


class ElasticBottleneck(_XBottleneck):
    """ResNeXt bottleneck, optionally Elastic (paper fig. 3 left, table 10).

    With ``elastic=False`` this is mmdet's ResNeXt bottleneck unchanged.
    With ``elastic=True`` the ``groups`` paths are split in two branches,
    each a full 1x1 - grouped 3x3 - 1x1 path set of its share of the width
    (``high_ratio`` of the paths, table 7; 0.5 gives C=16 + 16 for 32x4d):

    - high resolution: ``conv1``/``norm1``/``conv2``/``norm2``/``conv3`` on
      the block input (the parent's names, at the branch's width);
    - low resolution: ``conv1_low`` ... ``conv3_low`` on the input 2x2
      average-pooled (paper 4: stride-2 average pooling), upsampled back 2x
      bilinearly (table 6: best choice).

    The two ``conv3`` outputs are summed before the shared ``norm3``, then
    the residual is added (eq. 3). Parameter count equals the plain block's
    (table 1). With ``se=True`` (SE-ResNeXt, table 2, Elastic or not) a
    squeeze-and-excitation layer (``se_layer``: global average pool, 1x1
    conv to 1/16 of the channels with bias, ReLU, 1x1 conv back with bias,
    sigmoid) rescales the channels after ``norm3``, before the residual is
    added, as the ELASTIC release places it. Choices where the paper is vague: an odd input size is
    pooled with ``ceil_mode`` (the last row/column averages the real pixels
    only, same as replicate padding to even), upsampled by exactly 2 and
    cropped to the input size, so full cells keep exact 2x geometry; a
    dilated block (segmentation) dilates both branches' 3x3 convs alike.
    Elastic blocks have stride 1 and no dcn/plugins (paper 4).
    """

    def __init__(self,
                 inplanes,
                 planes,
                 groups=1,
                 base_width=4,
                 base_channels=64,
                 elastic=False,
                 high_ratio=0.5,
                 se=False,
                 **kwargs):
        super().__init__(inplanes, planes, groups=groups,
                         base_width=base_width, base_channels=base_channels,
                         **kwargs)
        self.elastic = elastic
        self.se_layer = None
        if se:
            if self.with_plugins:
                raise ValueError('ElasticBottleneck: plugins are not '
                                 'supported with se=True; allowed: None.')
            self.se_layer = SELayer(self.planes * self.expansion, ratio=16)
        if not elastic:
            return
        if self.stride != 1:
            raise ValueError(f'ElasticBottleneck: stride={self.stride!r}; '
                             'Elastic blocks allow stride 1 only (paper 4).')
        if self.with_dcn or self.with_plugins:
            raise ValueError('ElasticBottleneck: dcn/plugins are not '
                             'supported in Elastic blocks; allowed: None.')
        high = high_res_groups('ElasticBottleneck', groups, high_ratio)
        group_width = self.conv2.in_channels // groups
        self.norm1_name, self.norm2_name = self._make_branch(
            '', high * group_width, high)
        self.norm1_low_name, self.norm2_low_name = self._make_branch(
            '_low', (groups - high) * group_width, groups - high)

    def _make_branch(self, suffix, width, groups):
        """Build conv1/norm1/conv2/norm2/conv3 + ``suffix``; return the
        norm names."""
        norm1_name, norm1 = build_norm_layer(
            self.norm_cfg, width, postfix='1' + suffix)
        norm2_name, norm2 = build_norm_layer(
            self.norm_cfg, width, postfix='2' + suffix)
        self.add_module('conv1' + suffix, build_conv_layer(
            self.conv_cfg, self.inplanes, width, kernel_size=1, bias=False))
        self.add_module(norm1_name, norm1)
        self.add_module('conv2' + suffix, build_conv_layer(
            self.conv_cfg, width, width, kernel_size=3,
            padding=self.dilation, dilation=self.dilation, groups=groups,
            bias=False))
        self.add_module(norm2_name, norm2)
        self.add_module('conv3' + suffix, build_conv_layer(
            self.conv_cfg, width, self.planes * self.expansion,
            kernel_size=1, bias=False))
        return norm1_name, norm2_name

    @property
    def norm1_low(self):
        return getattr(self, self.norm1_low_name)

    @property
    def norm2_low(self):
        return getattr(self, self.norm2_low_name)

    def _branch(self, x, conv1, norm1, conv2, norm2, conv3):
        x = self.relu(norm1(conv1(x)))
        x = self.relu(norm2(conv2(x)))
        return conv3(x)

    def forward(self, x):
        if not self.elastic and self.se_layer is None:
            return super().forward(x)

        def _inner_forward(x):
            out = self._branch(x, self.conv1, self.norm1, self.conv2,
                               self.norm2, self.conv3)
            if self.elastic:
                low = self._branch(avg_pool2x(x), self.conv1_low,
                                   self.norm1_low, self.conv2_low,
                                   self.norm2_low, self.conv3_low)
                out = out.add_(
                    upsample2x(low)[..., :x.shape[2], :x.shape[3]])
            out = self.norm3(out)
            if self.se_layer is not None:
                out = self.se_layer(out)
            identity = x if self.downsample is None else self.downsample(x)
            return out.add_(identity)

        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(_inner_forward, x, use_reentrant=False)
        else:
            out = _inner_forward(x)
        return self.relu(out)


@MODELS.register_module()
class ElasticResNeXt(ResNetFamily, ResNeXt):
    """ResNeXt-50/101 (32x4d by default) with Elastic blocks (paper 3.3,
    appendix B, table 10).

    Elastic applies to every stride-1 block outside the last stage (7x7 at
    224 input), i.e. all blocks of stages 1-3 except the stride-2 first
    blocks of stages 2 and 3 (paper 4): 17 blocks for depth 50, 44 for 101.

    Args:
        depth (int): 50 or 101.
        groups, base_width (int): paths and their width; 32 x 4 (the
            paper's 32x4d) by default.
        elastic (bool): False gives plain ResNeXt (mmdet's parameter names,
            so its checkpoints load).
        stage_blocks (tuple[int] | None): blocks per stage. Default: the
            Elastic layout of appendix B when ``elastic`` ((6, 8, 5, 3) for
            50, (12, 14, 20, 3) for 101), else the original ResNeXt layout
            ((3, 4, 6, 3) / (3, 4, 23, 3)). ``elastic=True`` with the
            original layout is sElastic (appendix A, table 8).
        high_ratio (float): share of the paths at high resolution
            (table 7; default 0.5).
        se (bool): squeeze-and-excitation in every block (SE-ResNeXt-50 +
            Elastic, table 2), placed and sized as in the ELASTIC release
            (after the last BN, 1/16 of the channels).
        multi_grid (tuple[int] | None): unit rates of the last stage's
            blocks, multiplied by ``dilations[-1]`` as in DeepLabv3 (Chen et
            al. 2017, 3.2): ``dilations[-1]=2, multi_grid=(1, 2, 4)`` gives
            rates (2, 4, 8). Note that mmseg's ``ResNetV1c`` takes absolute
            rates instead.
        **kwargs: mmdet ``ResNeXt`` arguments (groups, base_width, strides,
            dilations, out_indices, frozen_stages, norm_eval, conv_cfg,
            norm_cfg, with_cp, init_cfg, ...).

    Which blocks are Elastic depends only on the architecture, not on
    ``strides``: for output stride 8/16 the first block of a de-strided
    stage stays plain, so ImageNet checkpoints load unchanged.
    """
    arch_settings = {
        50: (ElasticBottleneck, (6, 8, 5, 3)),
        101: (ElasticBottleneck, (12, 14, 20, 3)),
    }
    plain_stage_blocks = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}

    def __init__(self,
                 depth,
                 groups=32,
                 base_width=4,
                 elastic=True,
                 stage_blocks=None,
                 high_ratio=0.5,
                 se=False,
                 multi_grid=None,
                 **kwargs):
        name = type(self).__name__
        # read below, before the stages are built: check first
        check_resnet_args(name, self.arch_settings, depth, **kwargs)
        for key, value in (('elastic', elastic), ('se', se)):
            if not isinstance(value, bool):
                fail(name, key, value, 'True or False')
        if stage_blocks is None:
            stage_blocks = (self.arch_settings[depth][1] if elastic else
                            self.plain_stage_blocks[depth])
        stage_blocks = check_ints(name, 'stage_blocks', stage_blocks,
                                  count=4, low=1)
        if elastic:
            high_res_groups(name, groups, high_ratio)
            stride = kwargs.get('strides', (1, 2, 2, 2))[0]
            if stride != 1:
                fail(name, 'strides[0]', stride,
                     '1 (the first block is Elastic, of stride 1)')
        if multi_grid is not None:
            last = stage_blocks[kwargs.get('num_stages', 4) - 1]
            multi_grid = check_ints(
                name, 'multi_grid', multi_grid, count=last, low=1,
                allowed=f'None or {last} ints >= 1 (one per block of the '
                'last stage)')
        self.elastic = elastic
        self.high_ratio = high_ratio
        self.se = se
        self.multi_grid = multi_grid
        # The layout is per instance; ResNet reads it from arch_settings.
        self.arch_settings = {depth: (ElasticBottleneck, stage_blocks)}
        super().__init__(depth=depth, groups=groups, base_width=base_width,
                         **kwargs)

    def block_args(self, stage, num_blocks, dilation, **stage_args):
        """Elastic: stride-1 blocks of stages 1-3; multi-grid rates in the
        last stage; SE in every block."""
        grid = (self.multi_grid if self.multi_grid is not None
                and stage == self.num_stages - 1 else (1, ) * num_blocks)
        return [
            dict(elastic=self.elastic and stage < 3 and (j > 0 or stage == 0),
                 high_ratio=self.high_ratio, se=self.se,
                 dilation=dilation * g)
            for j, g in enumerate(grid)
        ]
