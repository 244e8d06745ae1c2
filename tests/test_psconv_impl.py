"""PSConv's two execution plans and hand-written backward equal eq. (3)."""
import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from test_psconv import naive_psconv

from msdet.ops import PSConv2d
from msdet.ops.psconv import LARGE_MAP, _PSConvFunction

CASES = [
    # c_in, c_out, groups, stride, pattern, base dilation, kernel size, impl
    (8, 8, 1, 1, (1, 2, 1, 4), 1, 3, 'blocks'),
    (8, 16, 1, 2, (1, 2, 1, 4), 1, 3, 'blocks'),
    (8, 8, 1, 1, (1, 2, 1, 4), 1, 3, 'grouped'),
    (8, 4, 1, 2, (2, 1, 1, 1), 1, 3, 'grouped'),
    (8, 4, 1, 1, (2, 1, 1, 1), 1, 3, 'blocks'),
    (6, 6, 1, 1, (1, 3), 2, 3, 'blocks'),
    (8, 8, 1, 1, (1, 2, 4, 8), 1, 5, 'blocks'),
    (16, 16, 4, 2, (1, 2, 1, 4), 1, 3, 'grouped'),
    (16, 8, 2, 1, (1, 2, 1, 2), 1, 3, 'grouped'),
]


@pytest.mark.parametrize('layout', ['blocks', 'interleaved'])
@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('cin,cout,groups,stride,pattern,dil,k,impl', CASES)
def test_plan_equals_eq3_fp64_with_gradients(cin, cout, groups, stride,
                                             pattern, dil, k, impl,
                                             channels_last, layout):
    torch.manual_seed(0)
    conv = PSConv2d(cin, cout, k, stride, dil * (k // 2), dil, groups,
                    bias=True, pattern=pattern, impl=impl,
                    layout=layout).double()
    x = torch.randn(2, cin, 11, 9, dtype=torch.double)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    y = conv(x)
    ref = naive_psconv(x, conv.weight, conv.dilation_matrix, stride,
                       groups) + conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    gy = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, conv.weight, conv.bias), gy)
    want = torch.autograd.grad(ref, (x, conv.weight, conv.bias), gy)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('layout', ['blocks', 'interleaved'])
@pytest.mark.parametrize('impl', ['grouped', 'blocks'])
def test_gradcheck_and_partial_gradients(impl, layout):
    torch.manual_seed(0)
    conv = PSConv2d(4, 4, 3, 2, impl=impl, layout=layout).double()
    x = torch.randn(1, 4, 7, 6, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w: _PSConvFunction.apply(x, w, conv), (x, conv.weight),
        fast_mode=True)
    # input only (frozen weight) and weight only (e.g. a frozen stem below)
    conv.weight.requires_grad_(False)
    gx, = torch.autograd.grad(conv(x).sum(), x)
    conv.weight.requires_grad_(True)
    gw, = torch.autograd.grad(conv(x.detach()).sum(), conv.weight)
    ref = naive_psconv(x, conv.weight, conv.dilation_matrix, 2, 1).sum()
    want = torch.autograd.grad(ref, (x, conv.weight))
    torch.testing.assert_close(gx, want[0])
    torch.testing.assert_close(gw, want[1])


def test_auto_picks_blocks_for_narrow_blocks_on_large_maps():
    narrow = PSConv2d(64, 64, 3)  # 16-channel blocks
    wide = PSConv2d(128, 128, 3)
    grouped = PSConv2d(64, 64, 3, groups=2)
    side = int(LARGE_MAP**0.5)
    small = torch.zeros(1, 64, side - 1, side)
    large = torch.zeros(1, 64, side, side)
    assert narrow._which(small) == 'grouped'
    assert narrow._which(large) == 'blocks'
    assert wide._which(large.repeat(1, 2, 1, 1)) == 'grouped'
    assert grouped._which(large) == 'grouped'
    # the same function either way
    x = torch.randn(1, 64, side, side)
    forced = PSConv2d(64, 64, 3, impl='grouped')
    forced.weight = narrow.weight
    with torch.no_grad():
        torch.testing.assert_close(narrow(x), forced(x), rtol=1e-4,
                                   atol=1e-4)


@pytest.mark.parametrize('impl', ['grouped', 'blocks'])
def test_flops_equal_dense_conv_and_trace_runs(impl):
    x = torch.randn(1, 32, 20, 20)
    ps = PSConv2d(32, 32, 3, 2, impl=impl)
    dense = torch.nn.Conv2d(32, 32, 3, 2, 1, bias=False)
    f_dense = FlopAnalyzer(dense, (x, )).total()
    assert f_dense > 0 and FlopAnalyzer(ps, (x, )).total() == f_dense
    traced = torch.jit.trace(ps, (x, ))
    with torch.no_grad():
        torch.testing.assert_close(traced(x), ps(x))


@pytest.mark.parametrize('kwargs,match', [
    (dict(impl='fast'), "impl='fast'"),
    (dict(impl='blocks', groups=2), 'groups=2'),
    (dict(layout='nchw'), "layout='nchw'"),
])
def test_bad_impl_or_layout_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PSConv2d(16, 16, 3, **kwargs)


def test_plans_hold_no_state():
    conv = PSConv2d(64, 64, 3)
    assert set(conv.state_dict()) == {'weight'}
    conv.double()  # index buffers stay integer
    assert conv._w_perm_grouped.dtype == torch.int32


def test_eval_caches_the_per_rate_weights_until_they_change():
    torch.manual_seed(0)
    conv = PSConv2d(16, 16, 3).eval()
    x = torch.randn(1, 16, 9, 9)

    def ref():
        return naive_psconv(x, conv.weight, conv.dilation_matrix, 1, 1)

    with torch.no_grad():
        first = conv._weights('grouped', conv.weight)
        assert conv._weights('grouped', conv.weight) is first
        torch.testing.assert_close(conv(x), ref())
        conv.weight.mul_(2)  # an optimizer step / load_state_dict: versioned
        torch.testing.assert_close(conv(x), ref())
        conv.weight.data.copy_(torch.randn_like(conv.weight))  # unversioned,
        conv.eval()  # as by EMAHook's swap then the val loop's eval()
        torch.testing.assert_close(conv(x), ref())
    conv.train()
    with torch.no_grad():  # training mode and autograd never keep them
        assert conv._weights('grouped', conv.weight) is not \
            conv._weights('grouped', conv.weight)
    conv.eval()
    assert conv._weights('grouped', conv.weight) is not \
        conv._weights('grouped', conv.weight)
