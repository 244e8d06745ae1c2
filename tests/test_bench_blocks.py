"""bench.official (plain-torch rebuilds of the released ScaleNet and
Elastic-ResNeXt forms) computes msdet's function with msdet's weights;
bench.blocks gives well-formed rows."""
import pytest
import torch

from bench import blocks
from bench.official import OfficialSABlock, official
from msdet.models.backbones import ElasticResNeXt, ScaleNet


def randomize_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * .1)
            m.running_var.copy_(torch.rand(n, generator=g) + .5)
            m.weight.data.copy_(torch.rand(n, generator=g) + .5)
            m.bias.data.copy_(torch.randn(n, generator=g) * .1)
    return model


def outputs_close(a, b, tol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        assert (x - y).abs().max() <= tol * (1 + y.abs().max())


def check_official(model, eval_sizes, train_size):
    """The official rebuild of ``model`` (BN statistics randomised) gives
    its outputs in eval mode at ``eval_sizes`` and in train mode (batch
    statistics) at ``train_size``; returns the rebuild."""
    torch.manual_seed(0)
    randomize_bn(model)
    model.eval()
    ref = official(model)
    ref.eval()
    with torch.no_grad():
        for size in eval_sizes:
            x = torch.randn(2, 3, *size)
            outputs_close(ref(x), model(x), 1e-5)
    model.train()
    ref.train()
    x = torch.randn(2, 3, *train_size)
    outputs_close(ref(x), model(x), 1e-3)
    return ref


@pytest.mark.parametrize('kwargs', [{}, dict(se=True)])
def test_official_elastic_equals_msdet(kwargs):
    """Elastic blocks (pooled half, odd sizes cropped) and the release's
    two full-resolution halves in the other blocks, eval and train."""
    model = ElasticResNeXt(depth=50, base_channels=16, groups=8,
                           norm_eval=False, **kwargs)
    check_official(model, [(64, 64), (67, 45)], (64, 64))


def test_official_scalenet_equals_msdet():
    """The release's SA block (per-scale BN, pools rounding down, nearest
    or bilinear upsampling) = msdet with resample='release' at any size,
    and msdet's default where every pooled side divides its map."""
    model = ScaleNet(depth=50, base_channels=8, structure=dict(seed=2),
                     resample='release', norm_eval=False)
    ref = check_official(model, [(224, 224), (231, 250)], (224, 224))
    assert isinstance(ref.stages[1][0], OfficialSABlock)
    paper = ScaleNet(depth=50, base_channels=8, structure=dict(seed=2))
    paper.load_state_dict(model.state_dict())
    paper.eval()
    ref.eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 896, 896)  # every pooled side divides
        outputs_close(ref(x), paper(x), 1e-5)


def test_official_refuses_other_backbones():
    from mmdet.models.backbones import ResNet
    with pytest.raises(TypeError, match='no official form of ResNet'):
        official(ResNet(depth=18))


def test_block_rows_and_profile():
    rows = blocks.run(quick=True, reps=1, modes=('eval', ), threads=(1, ))
    pairs = {(r['pair'], r['stage']) for r in rows}
    assert pairs == {('Elastic / ResNeXt', s) for s in (1, 2, 3)} | {
        ('SA / ResNet', s) for s in (1, 2, 3, 4)}
    cats = [name for name, _ in blocks.CATEGORIES] + ['other']
    for r in rows:
        assert r['impl'] in ('msdet', 'official', 'baseline')
        assert set(r['profile']) == set(cats)
        assert r['ms'] > 0 and r['profile']['conv'] > 0
        if r['impl'] == 'baseline':
            assert r['ratio'] == 1
    assert blocks.category('aten::mkldnn_convolution') == 'conv'
    assert blocks.category('aten::upsample_bilinear2d') == 'resample'
    assert blocks.category('aten::max_pool2d_with_indices') == 'pool'
    table = blocks.markdown(rows)
    assert table.count('\n') == len(rows) + 2
