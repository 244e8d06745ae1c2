"""PSConv equals eq. (3) of the PSConv paper, with the cost of a dense conv."""
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


@pytest.mark.parametrize('layout', ['blocks', 'interleaved'])
@pytest.mark.parametrize('cin,cout,groups,stride,pattern,dil,k', CASES)
def test_equals_eq3_fp32_with_gradients(cin, cout, groups, stride, pattern,
                                        dil, k, layout):
    torch.manual_seed(0)
    conv = PSConv2d(cin, cout, k, stride, dil * (k // 2), dil, groups,
                    bias=True, pattern=pattern, layout=layout)
    x = torch.randn(2, cin, 13, 10, requires_grad=True)
    y = conv(x)
    ref = naive_psconv(x, conv.weight, conv.dilation_matrix, stride,
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
    conv = PSConv2d(16, 8, 3, groups=2, layout='interleaved')
    D = conv.dilation_matrix
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


def test_blocks_layout_is_eq3_with_channels_sorted_into_rate_blocks():
    """Appendix B: the default layout stores each residue's channels as one
    block; it is the interleaved layer with its channels permuted."""
    inter = PSConv2d(8, 16, 3, layout='interleaved')
    blocks = PSConv2d(8, 16, 3)
    assert blocks.layout == 'blocks'
    # the grouped plan's block order: rate 1's input sets {0, 2}, {1, 3}
    assert blocks.residue_channels(8).tolist() == [[0, 1], [4, 5], [2, 3],
                                                   [6, 7]]
    assert inter.residue_channels(8).tolist() == [[0, 4], [1, 5], [2, 6],
                                                  [3, 7]]
    # the same (residue, position) in both layouts
    i_in, i_out = (inter.residue_channels(n).flatten() for n in (8, 16))
    b_in, b_out = (blocks.residue_channels(n).flatten() for n in (8, 16))
    assert torch.equal(blocks.dilation_matrix[b_out][:, b_in],
                       inter.dilation_matrix[i_out][:, i_in])
    # constant on each (out block, in block)
    D = blocks.dilation_matrix.view(4, 4, 4, 2)
    assert (D == D[:, :1, :, :1]).all()
    with torch.no_grad():
        inter.weight[i_out[:, None], i_in] = blocks.weight[b_out[:, None],
                                                           b_in]
    x = torch.randn(2, 8, 9, 10)
    x_b = torch.empty_like(x)
    x_b[:, b_in] = x[:, i_in]
    with torch.no_grad():
        torch.testing.assert_close(blocks(x_b)[:, b_out], inter(x)[:, i_out])


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
    (dict(pattern=()), 'empty'),
    (dict(pattern=(1, 0, 1, 4)), 'rates must be >= 1'),
    (dict(pattern=(1, 2, 1, 4), interval=8), 't=8'),
    (dict(pattern=(1, 2, 1)), 't=3 must divide'),
    (dict(groups=8), 'groups=8'),
    (dict(padding=0), 'padding'),
])
def test_bad_arguments_rejected_at_build(kwargs, match):
    args = dict(in_channels=16, out_channels=16, kernel_size=3, padding=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_conv_layer(dict(type='PSConv'), **args)
