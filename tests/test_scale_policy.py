"""Scale-policy score (ELASTIC 4.1.1, eq. 5): hook values against a direct
computation, and the tool's outputs on a small trained-format checkpoint."""
import csv
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from msdet.analysis import (ScalePolicyRecorder, compute_scale_policy,
                            elastic_blocks, save_scale_policy)
from msdet.datasets.synthetic_voc import make_voc_dataset
from msdet.models.backbones import ElasticResNeXt
from conftest import load_tool, working_dir

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CFG = osp.join(REPO, 'configs/elastic/demo/deeplabv3_ex50_voc_demo.py')


def randomize(module, seed=0):
    """Random weights and BN statistics, so eval-mode BN is not identity."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.2
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5
    return module


def small_model():
    m = randomize(ElasticResNeXt(depth=50, groups=8, base_channels=16))
    m.eval()
    return m


def direct_scores(model, x):
    """Eq. 5 by hand: run the stem and blocks one by one; at each Elastic
    block recompute both branches' 3x3 conv -> BN -> ReLU from its input."""
    x = model.maxpool(model.relu(model.norm1(model.conv1(x))))
    cols = []
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in layer:
            if block.elastic:
                high = F.relu(block.norm2(block.conv2(F.relu(block.norm1(
                    block.conv1(x))))))
                low_in = F.avg_pool2d(x, 2, ceil_mode=True)
                low = F.relu(block.norm2_low(block.conv2_low(F.relu(
                    block.norm1_low(block.conv1_low(low_in))))))
                if x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0:
                    # eq. 5 literally: high sums over 2H x 2W, / 4HWC
                    _, c, h, w = low.shape
                    assert high.shape[1:] == (c, 2 * h, 2 * w)
                    s = (high.sum((1, 2, 3)) / (4 * h * w * c) -
                         low.sum((1, 2, 3)) / (h * w * c))
                else:
                    s = high.mean((1, 2, 3)) - low.mean((1, 2, 3))
                cols.append(s)
            x = block(x)
    return torch.stack(cols, dim=1).numpy()


@pytest.mark.parametrize('size', [(64, 64), (72, 56), (67, 61)])
def test_hook_scores_equal_direct_computation(size):
    model = small_model()
    x = torch.randn(3, 3, *size)
    with torch.no_grad(), ScalePolicyRecorder(model) as rec:
        model(x)
        model(x[:1])
    scores = rec.scores()
    assert scores.shape == (4, 17)  # 3 + 1 images, 17 Elastic blocks
    with torch.no_grad():
        expected = direct_scores(model, x)
    np.testing.assert_allclose(scores[:3], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scores[3], expected[0], rtol=1e-4, atol=1e-5)
    assert rec.names[0] == 'layer1.0' and rec.names[6] == 'layer2.1'


def test_hooks_are_removed_and_outputs_unchanged():
    model = small_model()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = model(x)[-1]
        with ScalePolicyRecorder(model):
            during = model(x)[-1]
        after = model(x)[-1]
    assert torch.equal(before, during) and torch.equal(before, after)
    assert all(not m._forward_hooks for m in model.modules())


def test_needs_an_elastic_model():
    with pytest.raises(ValueError, match='no Elastic block'):
        ScalePolicyRecorder(ElasticResNeXt(depth=50, groups=8,
                                           base_channels=16, elastic=False))
    with pytest.raises(ValueError, match='max_images=0'):
        compute_scale_policy(small_model(), [], max_images=0)


def test_save_writes_matrix_means_and_sorted_heatmap(tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 3))
    result = dict(scores=scores, blocks=['layer1.0', 'layer1.1', 'layer2.1'],
                  images=[f'img{i}.jpg' for i in range(5)])
    paths = save_scale_policy(result, tmp_path)
    assert np.array_equal(np.load(paths['npy']), scores)
    with open(paths['csv']) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['image', 'layer1.0', 'layer1.1', 'layer2.1', 'mean']
    csv_scores = np.array([[float(v) for v in r[1:4]] for r in rows[1:]])
    assert np.array_equal(csv_scores, scores)  # repr round-trips floats
    with open(paths['block_mean']) as f:
        means = [float(r[1]) for r in list(csv.reader(f))[1:]]
    np.testing.assert_allclose(means, scores.mean(axis=0))
    summary = json.loads(open(paths['summary']).read())
    order = np.argsort(-scores.mean(axis=1))
    assert summary['images_by_mean_score'] == [f'img{i}.jpg' for i in order]
    heat = Image.open(paths['heatmap'])
    assert heat.format == 'PNG' and heat.size[0] > 100
    with pytest.raises(ValueError, match='do not match'):
        save_scale_policy(dict(result, images=['a']), tmp_path)


def test_tool_on_a_checkpoint_and_the_embedded_dataset(tmp_path, capsys):
    """tools/analysis/scale_policy.py on the demo DeepLabv3 config: one row
    per val image (paths from the dataset), one column per Elastic block,
    equal to the recorder run directly on the same weights."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    make_voc_dataset(tmp_path / 'data/voc_demo', num_train=1, num_val=3)
    cfg = Config.fromfile(DEMO_CFG)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    randomize(model.backbone)
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)

    tool = load_tool('analysis/scale_policy')
    with working_dir(tmp_path):
        result = tool.main([DEMO_CFG, str(ckpt), '--out-dir', 'sp',
                            '--max-images', '2'])
    scores = np.load(tmp_path / 'sp/scores.npy')
    assert scores.shape == (2, 17)
    assert [osp.basename(p) for p in result['images']] == [
        'val_000000.jpg', 'val_000001.jpg']
    assert result['blocks'] == [n for n, _ in elastic_blocks(model.backbone)]
    for name in ('scores.csv', 'block_mean.csv', 'summary.json',
                 'heatmap.png'):
        assert (tmp_path / 'sp' / name).is_file()
    assert 'mean S' in capsys.readouterr().out
    # the same numbers straight from the recorder on the same weights
    img = mmcv.imread(tmp_path / 'data/voc_demo/VOC2012/JPEGImages/'
                      'val_000001.jpg')  # BGR, as the pipeline loads it
    model.eval()
    data = model.data_preprocessor(
        dict(inputs=[torch.from_numpy(img).permute(2, 0, 1)]), False)
    with torch.no_grad(), ScalePolicyRecorder(model.backbone) as rec:
        model.backbone(data['inputs'])
    np.testing.assert_allclose(scores[1], rec.scores()[0], rtol=1e-4,
                               atol=1e-6)
