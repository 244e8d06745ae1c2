"""PSConv's execution (rate-grouped convolutions, gradients by autograd)
equals eq. (3) in float64, for any input layout, and keeps no state."""
import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from test_psconv import CASES as EQ3_CASES
from test_psconv import naive_psconv

from msdet.ops import PSConv2d

# eq. (3)'s cases, and patterns that group into other convolutions
CASES = EQ3_CASES + [
    # c_in, c_out, groups, stride, pattern, base dilation, kernel size
    (8, 4, 1, 2, (2, 1, 1, 1), 1, 3),
    (6, 6, 1, 1, (1, 3), 2, 3),
    (16, 8, 2, 1, (1, 2, 1, 2), 1, 3),
    (8, 8, 1, 1, (4, 1, 2, 1), 1, 3),
    (12, 12, 2, 1, (1, 2, 3, 1, 2, 3), 1, 3),
    (6, 6, 1, 1, (1, ), 1, 3),
]


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('cin,cout,groups,stride,pattern,dil,k', CASES)
def test_equals_eq3_fp64_with_gradients(cin, cout, groups, stride, pattern,
                                        dil, k, channels_last):
    torch.manual_seed(0)
    conv = PSConv2d(cin, cout, k, stride, dil * (k // 2), dil, groups,
                    bias=True, pattern=pattern).double()
    x = torch.randn(2, cin, 11, 9, dtype=torch.double)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    y = conv(x)
    ref = naive_psconv(x, conv.dense_weight(), conv.dilation_matrix, stride,
                       groups) + conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    gy = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, conv.weight, conv.bias), gy)
    want = torch.autograd.grad(ref, (x, conv.weight, conv.bias), gy)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    with torch.no_grad():  # inference sums the blocks in place
        torch.testing.assert_close(conv(x), ref, rtol=1e-10, atol=1e-10)


def test_gradcheck_and_partial_gradients():
    torch.manual_seed(0)
    conv = PSConv2d(4, 4, 3, 2).double()
    x = torch.randn(1, 4, 7, 6, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w: torch.func.functional_call(conv, {'weight': w}, (x, )),
        (x, conv.weight), fast_mode=True)
    # input only (frozen weight) and weight only (e.g. a frozen stem below)
    conv.weight.requires_grad_(False)
    gx, = torch.autograd.grad(conv(x).sum(), x)
    conv.weight.requires_grad_(True)
    gw, = torch.autograd.grad(conv(x.detach()).sum(), conv.weight)
    ref = naive_psconv(x, conv.dense_weight(), conv.dilation_matrix, 2,
                       1).sum()
    want = torch.autograd.grad(ref, (x, conv.weight))
    torch.testing.assert_close(gx, want[0])
    torch.testing.assert_close(gw, want[1])


def test_flops_equal_dense_conv_and_trace_runs():
    x = torch.randn(1, 32, 20, 20)
    ps = PSConv2d(32, 32, 3, 2)
    dense = torch.nn.Conv2d(32, 32, 3, 2, 1, bias=False)
    f_dense = FlopAnalyzer(dense, (x, )).total()
    assert f_dense > 0 and FlopAnalyzer(ps, (x, )).total() == f_dense
    traced = torch.jit.trace(ps, (x, ))
    with torch.no_grad():
        torch.testing.assert_close(traced(x), ps(x))


def test_plan_holds_no_state():
    conv = PSConv2d(64, 64, 3)
    assert set(conv.state_dict()) == {'weight'}
    assert not list(conv.buffers())
    conv.double()
    # a plain module: deep copies and pickles like nn.Conv2d
    import copy
    import pickle
    clone = pickle.loads(pickle.dumps(copy.deepcopy(conv)))
    x = torch.randn(1, 64, 5, 5, dtype=torch.double)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), conv(x))


def test_a_call_copies_no_weight():
    """Each rate-grouped convolution reads a view of the parameter: the
    forward runs convolutions and block sums only, no gather or copy of the
    weight."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):

        def __init__(self):
            super().__init__()
            self.ops, self.weights = [], []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(func.overloadpacket.__name__)
            if func.overloadpacket is torch.ops.aten.convolution:
                self.weights.append(args[1])
            return func(*args, **(kwargs or {}))

    conv = PSConv2d(16, 16, 3)
    x = torch.randn(1, 16, 9, 9, requires_grad=True)
    with Record() as rec:
        conv(x).sum().backward()
    assert len(rec.weights) == 3
    storage = conv.weight.untyped_storage().data_ptr()
    assert all(w.untyped_storage().data_ptr() == storage
               for w in rec.weights)
    assert not {'index_select', 'index', 'gather', 'index_add',
                'index_put'} & set(rec.ops)


def test_output_follows_every_weight_change_in_any_mode():
    """No per-rate weights are kept between calls, so no change of the
    weight can leave them stale: not an optimizer step, not a write through
    ``.data`` without a mode switch (as EMA swaps do), not a new tensor."""
    torch.manual_seed(0)
    conv = PSConv2d(16, 16, 3).eval()
    x = torch.randn(1, 16, 9, 9)

    def check():
        with torch.no_grad():
            torch.testing.assert_close(
                conv(x), naive_psconv(x, conv.dense_weight(),
                                      conv.dilation_matrix, 1, 1))

    check()
    with torch.no_grad():
        conv.weight.mul_(2)  # versioned in-place change
    check()
    conv.weight.data.copy_(torch.randn_like(conv.weight))  # unversioned
    check()
    conv.weight.data = torch.randn_like(conv.weight)  # new storage
    check()
    conv.train()
    check()
