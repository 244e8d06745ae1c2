"""PSConv equals eq. (3) of the PSConv paper, with the cost of a dense conv."""
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer

from msdet.ops import PSConv2d


def naive_psconv(x, weight, D, stride, groups):
    """Eq. (3) literally: every kernel (c, k) with its own rate D[c, k]."""
    n, _, h, w = x.shape
    c_out, cin_g, k, _ = weight.shape
    cout_g, r = c_out // groups, k // 2
    h_out, w_out = (h - 1) // stride + 1, (w - 1) // stride + 1
    out = x.new_zeros(n, c_out, h_out, w_out)
    for c in range(c_out):
        g = c // cout_g
        for kl in range(cin_g):
            d = int(D[c, kl])
            xp = F.pad(x[:, g * cin_g + kl], (r * d, ) * 4)
            for i in range(k):
                for j in range(k):
                    patch = xp[:, i * d:i * d + (h_out - 1) * stride + 1:stride,
                               j * d:j * d + (w_out - 1) * stride + 1:stride]
                    out[:, c] = out[:, c] + weight[c, kl, i, j] * patch
    return out


CASES = [
    # c_in, c_out, groups, stride, pattern, base dilation, kernel size
    (8, 8, 1, 1, (1, 2, 1, 4), 1, 3),
    (8, 16, 1, 2, (1, 2, 1, 4), 1, 3),
    (16, 8, 2, 1, (1, 2, 1, 4), 1, 3),
    (16, 16, 4, 2, (1, 2, 1, 4), 1, 3),
    (12, 6, 3, 2, (1, 3), 1, 3),
    (8, 8, 1, 1, (1, 2, 1, 4), 2, 3),
    (8, 8, 1, 1, (1, 2, 4, 8), 1, 5),
    (8, 4, 1, 1, (2, 1, 1, 1), 1, 3),
]


@pytest.mark.parametrize('cin,cout,groups,stride,pattern,dil,k', CASES)
def test_equals_eq3_fp32_with_gradients(cin, cout, groups, stride, pattern,
                                        dil, k):
    torch.manual_seed(0)
    conv = PSConv2d(cin, cout, k, stride, dil * (k // 2), dil, groups,
                    bias=True, pattern=pattern)
    x = torch.randn(2, cin, 13, 10, requires_grad=True)
    y = conv(x)
    ref = naive_psconv(x, conv.dense_weight(), conv.dilation_matrix, stride,
                       groups) + conv.bias.view(1, -1, 1, 1)
    assert y.shape == ref.shape == (2, cout, (13 - 1) // stride + 1,
                                    (10 - 1) // stride + 1)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    gy = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, conv.weight, conv.bias), gy)
    want = torch.autograd.grad(ref, (x, conv.weight, conv.bias), gy)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_dilation_matrix_cycles_and_shifts():
    """Section 3.2 in eq. (3)'s channel numbering (``residue_channels``)."""
    conv = PSConv2d(16, 8, 3, groups=2)
    # eq. (3)'s channel m * t + r of a group sits at residue_channels[r, m]
    eq3_in = conv.residue_channels(8).t().flatten()
    eq3_out = conv.residue_channels(4).t().flatten()
    eq3_out = torch.cat([eq3_out, 4 + eq3_out])
    D = conv.dilation_matrix[eq3_out][:, eq3_in]
    assert D.shape == (8, 8)
    # row c is the pattern shifted by c along the input channels (sec. 3.2)
    assert D[0].tolist() == [1, 2, 1, 4, 1, 2, 1, 4]
    assert D[1].tolist() == [4, 1, 2, 1, 4, 1, 2, 1]
    # the same cyclic pattern in each group (fig. 2, right)
    assert torch.equal(D[:4], D[4:])
    # every row and every column mixes all rates
    for line in list(D) + list(D.t()):
        assert set(line.tolist()) == {1, 2, 4}
    # base dilation (DeepLab OS16 stages) scales every rate
    assert torch.equal(PSConv2d(8, 8, 3, padding=2, dilation=2).dilation_matrix,
                       2 * PSConv2d(8, 8, 3).dilation_matrix)


def test_layout_is_eq3_with_channels_sorted_into_rate_blocks():
    """Appendix B: each residue's channels are one block; the layer is eq.
    (3) with the paper's cyclic D (res(k) = k mod t) up to that permutation
    of its input and output channels."""
    conv = PSConv2d(8, 16, 3).double()
    assert conv.order == [0, 2, 1, 3]  # rate 1's input sets {0, 2}, {1, 3}
    assert conv.residue_channels(8).tolist() == [[0, 1], [4, 5], [2, 3],
                                                 [6, 7]]
    t, pattern = 4, torch.tensor((1, 2, 1, 4))
    # D as printed in the paper: D[c, k] = pattern[(k - c) mod t]
    paper_D = pattern[(torch.arange(8)[None] - torch.arange(16)[:, None]) % t]
    # eq. (3)'s channel m * t + r is the layer's residue_channels[r, m]
    p_in = conv.residue_channels(8).t().flatten()
    p_out = conv.residue_channels(16).t().flatten()
    assert torch.equal(conv.dilation_matrix[p_out][:, p_in], paper_D)
    # D is constant on each (output block, input block)
    D = conv.dilation_matrix.view(4, 4, 4, 2)
    assert (D == D[:, :1, :, :1]).all()
    x = torch.randn(2, 8, 9, 10, dtype=torch.double)
    paper_w = conv.dense_weight()[p_out][:, p_in]
    with torch.no_grad():
        torch.testing.assert_close(
            conv(x[:, torch.argsort(p_in)])[:, p_out],
            naive_psconv(x, paper_w, paper_D, 1, 1))


def test_one_dense_weight_and_plain_conv_parameter_count():
    conv = build_conv_layer(dict(type='PSConv'), 64, 128, 3, padding=1,
                            groups=2, bias=False)
    assert isinstance(conv, PSConv2d)
    ref = torch.nn.Conv2d(64, 128, 3, padding=1, groups=2, bias=False)
    assert [n for n, _ in conv.named_parameters()] == ['weight']
    assert conv.weight.shape == ref.weight.shape == (128, 32, 3, 3)
    assert set(conv.state_dict()) == {'weight'}


@pytest.mark.parametrize('channels,groups,stride', [(64, 1, 1),
                                                     (128, 32, 2)])
def test_flops_equal_dense_conv(channels, groups, stride):
    from mmengine.analysis import FlopAnalyzer
    x = torch.randn(1, channels, 28, 28)
    ps = PSConv2d(channels, channels, 3, stride, 1, 1, groups)
    dense = torch.nn.Conv2d(channels, channels, 3, stride, 1, groups=groups,
                            bias=False)
    f_dense = FlopAnalyzer(dense, (x, )).total()
    assert f_dense > 0 and FlopAnalyzer(ps, (x, )).total() == f_dense


@pytest.mark.parametrize('kwargs,match', [
    (dict(pattern=()), r'pattern=\(\); allowed: a non-empty sequence of '
     r'ints >= 1'),
    (dict(pattern=(1, 0, 1, 4)), r'pattern=\(1, 0, 1, 4\); allowed: .*'
     r'ints >= 1'),
    (dict(pattern=(1, 2.5, 1, 4)), r'pattern=\(1, 2.5, 1, 4\); allowed'),
    (dict(pattern=(1, True)), r'pattern=\(1, True\); allowed'),
    (dict(pattern='1214'), r"pattern='1214'; allowed"),
    (dict(pattern=(1, 2, 1)), r'in_channels=16; allowed: .*t=3'),
    (dict(groups=8), r'in_channels=16; allowed: a multiple of groups \* t = '
     r'8 \* 4'),
    (dict(padding=0), r'padding=\(0, 0\); allowed'),
    (dict(kernel_size=2, padding=1), r'padding=\(1, 1\); allowed: .* odd'),
    (dict(padding_mode='reflect'), r"padding_mode='reflect'; allowed"),
])
def test_bad_arguments_rejected_at_build(kwargs, match):
    args = dict(in_channels=16, out_channels=16, kernel_size=3, padding=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match='^PSConv: ' + match):
        build_conv_layer(dict(type='PSConv'), **args)


def test_state_dict_holds_g_in_the_block_layout_as_version_2():
    """The parameter holds the rate-grouped convolutions' weights; the state
    dict holds ``G`` in the block layout (version 2, or none: converters'
    output; version 1: nn.Conv2d, older msdet), converted when loaded, and a
    layout this msdet does not know is refused."""
    torch.manual_seed(0)
    conv = PSConv2d(8, 8, 3)
    state = conv.state_dict()
    assert state._metadata[''] == {'version': 2}
    G = conv.dense_weight().detach()
    assert torch.equal(state['weight'], G)
    assert not torch.equal(G, conv.weight)  # the parameter is not G
    for version in (None, 1, 2):
        dense = OrderedDict(weight=G.clone())
        if version is not None:
            dense._metadata = {'': {'version': version}}
        other = PSConv2d(8, 8, 3)
        other.load_state_dict(dense)
        assert torch.equal(other.weight, conv.weight)
        assert torch.equal(dense['weight'], G)  # the caller's dict unchanged
    # a plain conv weight is G: the same kernels at the same [c, k]
    plain = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)
    other.load_state_dict(plain.state_dict())
    assert torch.equal(other.dense_weight(), plain.weight)
    assert torch.equal(other.state_dict()['weight'], plain.weight)
    # a wrong shape is torch's error, not a conversion
    with pytest.raises(RuntimeError, match='size mismatch'):
        other.load_state_dict(OrderedDict(weight=torch.zeros(8, 4, 3, 3)))
    # a layout this msdet does not know, also inside a model
    model = torch.nn.Sequential(PSConv2d(8, 8, 3))
    state = model.state_dict()
    state._metadata['0']['version'] = 3
    with pytest.raises(ValueError,
                       match=r"PSConv 0: the checkpoint records weight layout "
                       r"'unknown' \(state_dict version 3\), this PSConv "
                       r"stores layout 'blocks' \(version 2\)"):
        model.load_state_dict(state)
