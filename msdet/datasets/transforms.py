"""Data transforms of the released training / evaluation recipes that
mmcv, mmdet and mmseg do not have (used by the configs that reproduce
them)."""
import math

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform, Resize
from mmdet.datasets.transforms import Resize as DetResize
from mmengine.registry import TRANSFORMS

from ..utils.validation import check_ints, fail


@TRANSFORMS.register_module()
class RandomLogRescale(BaseTransform):
    """Rescale the image (and its segmentation map) by a factor drawn
    log-uniformly from ``ratio_range``: ``2 ** U(log2 lo, log2 hi)`` (the
    ELASTIC / DeepLabv3.pytorch segmentation recipe, ``utils.preprocess``),
    to ``(int(w * s + 0.5), int(h * s + 0.5))``. mmcv's ``RandomResize``
    draws the ratio uniformly, relative to a target scale.

    Args:
        ratio_range (tuple[float]): (lo, hi), 0 < lo <= hi.
        interpolation (str): image interpolation; default 'lanczos' with
            the 'pillow' backend, PIL's ``ANTIALIAS`` that the release
            uses. Segmentation maps always use nearest.
        backend (str): 'pillow' (default) or 'cv2'.
    """

    def __init__(self, ratio_range=(0.5, 2.0), interpolation='lanczos',
                 backend='pillow'):
        name = type(self).__name__
        if not (isinstance(ratio_range, (tuple, list)) and
                len(ratio_range) == 2 and
                all(isinstance(r, (int, float)) and not isinstance(r, bool)
                    for r in ratio_range) and
                0 < ratio_range[0] <= ratio_range[1]):
            fail(name, 'ratio_range', ratio_range,
                 '(lo, hi) with 0 < lo <= hi')
        self.ratio_range = tuple(ratio_range)
        self.resize = Resize(scale_factor=1.0, keep_ratio=False,
                             backend=backend, interpolation=interpolation)

    def transform(self, results):
        lo, hi = (math.log2(r) for r in self.ratio_range)
        s = 2**(lo + np.random.random_sample() * (hi - lo))
        self.resize.scale_factor = (s, s)
        return self.resize(results)

    def __repr__(self):
        return (f'{type(self).__name__}(ratio_range={self.ratio_range}, '
                f'interpolation={self.resize.interpolation!r}, '
                f'backend={self.resize.backend!r})')


@TRANSFORMS.register_module()
class CenterPad(BaseTransform):
    """Pad the image (and its segmentation map) on all sides to at least
    ``size``, centred: ``(H - h) // 2`` rows on top, the rest below (same
    for columns); sides already as large are left alone. The image becomes
    float32, so that ``pad_val`` may be the exact mean pixel (after the
    data preprocessor's normalisation: 0). Records ``img_padding_size``
    ``[left, right, top, bottom]``, which mmseg's segmentors crop off
    before resizing a prediction to the original image (keep it in
    ``PackSegInputs``' ``meta_keys``).

    The ELASTIC release's segmentation recipe pads this way (with 1 pixel
    at random above or below when ``H - h`` is odd) before its random crop
    in training, and before evaluating at 513x513.

    Args:
        size (tuple[int]): (H, W).
        pad_val (float | tuple[float]): image padding value, per channel
            in the loaded image's channel order (BGR for mmcv's loader).
        seg_pad_val (int): segmentation padding label (255: ignored).
    """

    def __init__(self, size, pad_val=0.0, seg_pad_val=255):
        name = type(self).__name__
        self.size = tuple(check_ints(name, 'size', size, count=2, low=1))
        self.pad_val, self.seg_pad_val = pad_val, seg_pad_val

    def transform(self, results):
        h, w = results['img'].shape[:2]
        dh, dw = max(self.size[0] - h, 0), max(self.size[1] - w, 0)
        top, left = dh // 2, dw // 2
        padding = (left, top, dw - left, dh - top)
        results['img'] = mmcv.impad(
            results['img'].astype(np.float32), padding=padding,
            pad_val=self.pad_val)
        for key in results.get('seg_fields', ['gt_seg_map']):
            if results.get(key) is not None:
                results[key] = mmcv.impad(results[key], padding=padding,
                                          pad_val=self.seg_pad_val)
        results['img_shape'] = results['pad_shape'] = \
            results['img'].shape[:2]
        results['img_padding_size'] = [left, dw - left, top, dh - top]
        return results

    def __repr__(self):
        return (f'{type(self).__name__}(size={self.size}, '
                f'pad_val={self.pad_val}, seg_pad_val={self.seg_pad_val})')


@TRANSFORMS.register_module()
class V1Resize(DetResize):
    """mmdet's ``Resize`` recording the scale factor as mmdet 1.x did, to
    evaluate its checkpoints as it did (PSConv release configs).

    With ``keep_ratio=True`` the image is resized as by mmdet's ``Resize``
    (``mmcv.imrescale``: one factor ``s = min(L / long side, S / short
    side)``, sides rounded); mmdet 3 then records the realised per-axis
    ratios (new side / old side), mmdet 1.x the factor ``s`` itself, by
    which it divides the detections to map them back to the original
    image. This records ``scale_factor = (s, s)``: the two differ by up to
    0.5 / s pixels in the original image.
    """

    def _resize_img(self, results):
        if results.get('img') is None or not self.keep_ratio:
            return super()._resize_img(results)
        h, w = results['img'].shape[:2]
        super()._resize_img(results)
        _, s = mmcv.rescale_size((w, h), results['scale'], return_scale=True)
        results['scale_factor'] = (s, s)
