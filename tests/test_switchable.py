"""Width-switchable layers and the model-wide switch (msdet.ops.switchable):
a width-w layer is the full layer's first channels (MutualNet 3.2)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import ExponentialMovingAverage

from msdet.ops import (Range, SlimmableBatchNorm2d, SlimmableConv2d,
                       SwitchableBatchNorm2d, active_channels, make_divisible,
                       set_subnet, subnet_space)


def test_make_divisible_is_the_released_rounding():
    assert make_divisible(16) == 16
    assert make_divisible(43.9) == 40 and make_divisible(44) == 48  # ties up
    assert make_divisible(11) == 16  # 8 would lose 27%
    assert make_divisible(0.64) == 1  # at least 1
    assert make_divisible(3.2) == 9  # 0 lost more than 10%: + 8
    assert make_divisible(6, divisor=4) == 8
    assert active_channels(64, 0.25) == 16
    assert active_channels(64, 0.3) == 24  # 19.2 -> 16 loses 17%: 24
    assert active_channels(64, 1.0) == 64
    assert active_channels(12, 0.5) == 8 and active_channels(4, 0.5) == 4
    assert active_channels(12, 1.0) == 12  # never more than the layer


@pytest.mark.parametrize('width,c_in', [(1.0, 12), (0.5, 6), (0.25, 12)])
def test_conv_at_width_w_is_conv_on_first_channels(width, c_in):
    torch.manual_seed(0)
    conv = SlimmableConv2d(12, 32, 3, stride=2, padding=1, divisor=4)
    conv.switch(width=width)
    c_out = active_channels(32, width, 4)
    x = torch.randn(2, c_in, 9, 7, requires_grad=True)
    y = conv(x)
    ref = F.conv2d(x, conv.weight[:c_out, :c_in], conv.bias[:c_out], 2, 1)
    assert y.shape[1] == c_out
    torch.testing.assert_close(y, ref, rtol=0, atol=0)
    # and an ordinary conv of that size with those weights
    plain = nn.Conv2d(c_in, c_out, 3, 2, 1)
    plain.load_state_dict({'weight': conv.weight[:c_out, :c_in],
                           'bias': conv.bias[:c_out]})
    torch.testing.assert_close(y, plain(x), rtol=0, atol=0)
    # gradients only reach the used slice of the shared weight
    y.sum().backward()
    assert conv.weight.grad[c_out:].abs().sum() == 0
    assert conv.weight.grad[:, c_in:].abs().sum() == 0
    assert conv.weight.grad[:c_out, :c_in].abs().sum() > 0


def test_full_width_conv_is_nn_conv2d():
    torch.manual_seed(0)
    conv = SlimmableConv2d(8, 16, 3, padding=1)
    plain = nn.Conv2d(8, 16, 3, padding=1)
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(1, 8, 6, 6)
    assert torch.equal(conv(x), plain(x))


def test_input_only_conv_equals_zero_filled_input():
    """The FPN lateral conv behind a narrow backbone: slicing its input
    channels equals zero-filling the missing ones."""
    torch.manual_seed(0)
    conv = SlimmableConv2d(32, 16, 1, slim_out=False)
    assert conv.switch_space() == {}
    x = torch.randn(2, 8, 5, 5)
    filled = torch.cat([x, x.new_zeros(2, 24, 5, 5)], 1)
    plain = nn.Conv2d(32, 16, 1)
    plain.load_state_dict(conv.state_dict())
    torch.testing.assert_close(conv(x), plain(filled), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='40 channels, the layer at most 32'):
        conv(torch.randn(1, 40, 3, 3))


def test_slimmable_bn_uses_and_updates_only_first_channels():
    torch.manual_seed(0)
    bn = SlimmableBatchNorm2d(16)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    ref = nn.BatchNorm2d(8)
    ref.load_state_dict({k: v[:8] if v.dim() else v
                         for k, v in bn.state_dict().items()})
    x = torch.randn(4, 8, 5, 5) * 3 + 1
    torch.testing.assert_close(bn(x), ref(x))
    torch.testing.assert_close(bn.running_mean[:8], ref.running_mean)
    torch.testing.assert_close(bn.running_var[:8], ref.running_var)
    assert torch.equal(bn.running_mean[8:], torch.zeros(8))
    assert torch.equal(bn.running_var[8:], torch.ones(8))
    bn.eval(), ref.eval()
    torch.testing.assert_close(bn(x), ref(x))
    # at full width: exactly nn.BatchNorm2d, statistics included
    full, plain = SlimmableBatchNorm2d(16), nn.BatchNorm2d(16)
    y = torch.randn(4, 16, 3, 3)
    assert torch.equal(full(y), plain(y))
    assert torch.equal(full.running_var, plain.running_var)


def test_switchable_bn_selects_private_bn():
    bn = SwitchableBatchNorm2d([8, 16], key='width', choices=[0.5, 1.0])
    assert bn.switch_space() == {'width': [0.5, 1.0]}
    assert bn.active == 1
    bn.switch(width=0.5)
    bn(torch.randn(2, 8, 3, 3) + 5)
    assert bn.bns[0].running_mean.mean() > 0.4  # moved towards 5
    assert torch.equal(bn.bns[1].running_mean, torch.zeros(16))
    with pytest.raises(ValueError, match='one count per choice'):
        SwitchableBatchNorm2d([8], key='width', choices=[0.5, 1.0])
    with pytest.raises(ValueError, match='distinct'):
        SwitchableBatchNorm2d(8, key='s', choices=[1.0, 1.0])


class Net(nn.Module):
    """conv (width) -> scale-aware BN on an unrelated key (a Resizable
    ResNet's use) -> a conv whose input follows the width (an FPN's)."""

    def __init__(self):
        super().__init__()
        self.conv = SlimmableConv2d(3, 16, 3, padding=1)
        self.bn = SwitchableBatchNorm2d(16, key='stage1',
                                        choices=[0.5, 0.75, 1.0])
        self.head = SlimmableConv2d(16, 4, 1, slim_out=False)


class Wrapper(nn.Module):
    """Like DDP: the model is ``.module``."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_set_subnet_reaches_every_module_through_wrappers():
    net = Net()
    space = subnet_space(net)
    assert space == {'width': (0.25, 1.0), 'stage1': [0.5, 0.75, 1.0]}
    assert isinstance(space['width'], Range)
    set_subnet(Wrapper(net), width=0.5, stage1=0.75)
    assert net.conv.width == 0.5 and net.bn.active == 1
    ema = ExponentialMovingAverage(net)  # holds a copy as .module
    assert subnet_space(Wrapper(ema)) == space
    set_subnet(Wrapper(ema), width=0.3)
    assert ema.module.conv.width == 0.3 and net.conv.width == 0.5
    assert subnet_space(nn.Conv2d(1, 1, 1)) == {}


def test_set_subnet_errors_name_key_value_and_range():
    net = Net()
    with pytest.raises(ValueError, match=r"'depth' is not a setting.*width"):
        set_subnet(net, depth=0.5)
    with pytest.raises(ValueError,
                       match=r'width=0.1 is out of range.*\[0.25, 1.0\]'):
        set_subnet(net, width=0.1)
    with pytest.raises(ValueError, match=r'stage1=0.6.*one of \[0.5, 0.75'):
        set_subnet(net, stage1=0.6)
    with pytest.raises(ValueError, match='a plain model'):
        set_subnet(nn.Conv2d(1, 1, 1), width=0.5)
    assert net.conv.width == 1.0  # nothing applied on error


def test_space_is_the_intersection_of_the_modules():
    net = nn.Sequential(
        SlimmableConv2d(3, 16, 1, width_range=(0.25, 1.0)),
        SwitchableBatchNorm2d([8, 16], key='width', choices=[0.5, 1.0]),
        SlimmableConv2d(16, 16, 1, width_range=(0.4, 1.0)))
    assert subnet_space(net) == {'width': [0.5, 1.0]}
    with pytest.raises(ValueError, match='one of'):
        set_subnet(net, width=0.75)


@pytest.mark.parametrize('bad', [(0, 1.0), (0.5, 1.5), (0.8, 0.5), 0.5])
def test_bad_width_range_is_rejected(bad):
    with pytest.raises(ValueError, match='0 < min <= max <= 1'):
        SlimmableConv2d(3, 8, 1, width_range=bad)


@pytest.mark.parametrize('kwargs,match', [
    (dict(divisor=0), r'SlimmableConv2d: divisor=0; allowed: an int >= 1\.'),
    (dict(divisor=True), r'divisor=True; allowed: an int >= 1'),
    (dict(groups=2), r'SlimmableConv2d: groups=2; allowed: 1\.'),
])
def test_bad_conv_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SlimmableConv2d(8, 8, 1, **kwargs)
