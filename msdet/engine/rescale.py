"""The same detection mini-batch at another input scale (MutualNet 3.2, 4.3).

Works on a batch as the dataloader yields it (before the data
preprocessor): ``inputs`` a list of ``(C, H, W)`` images, ``data_samples`` a
list of ``DetDataSample``. Every image is resized with mmcv (bilinear, keep
ratio) so that it fits ``scale = (long, short)`` as mmdet's
``Resize(scale, keep_ratio=True)`` would size it; boxes, masks, ``img_shape``,
``scale_factor`` (and ``homography_matrix`` when present) follow, so the
preprocessor then pads and records ``batch_input_shape`` as usual. The
input batch is left untouched.
"""
import mmcv
import numpy as np
import torch
from mmdet.structures.bbox import BaseBoxes

_INSTANCE_FIELDS = ('gt_instances', 'ignored_instances')


def rescale_batch(data: dict, scale) -> dict:
    """``data`` with every image resized to fit ``scale`` (see module)."""
    inputs, samples = [], []
    for img, sample in zip(data['inputs'], data['data_samples']):
        h, w = img.shape[-2:]
        new_w, new_h = mmcv.rescale_size((w, h), tuple(scale))
        if (new_h, new_w) == (h, w):
            inputs.append(img)
            samples.append(sample)
            continue
        inputs.append(_resize_image(img, new_w, new_h))
        samples.append(_rescale_sample(sample, new_w / w, new_h / h,
                                       (new_h, new_w)))
    return dict(data, inputs=inputs, data_samples=samples)


def _resize_image(img: torch.Tensor, new_w: int, new_h: int) -> torch.Tensor:
    arr = np.ascontiguousarray(img.permute(1, 2, 0).numpy())
    out = mmcv.imresize(arr, (new_w, new_h), interpolation='bilinear')
    if out.ndim == 2:
        out = out[..., None]
    return torch.from_numpy(out).permute(2, 0, 1).contiguous()


def _rescale_sample(sample, sx: float, sy: float, shape):
    meta = dict(sample.metainfo, img_shape=shape)
    if 'scale_factor' in meta:
        fx, fy = meta['scale_factor']
        meta['scale_factor'] = (fx * sx, fy * sy)
    if 'homography_matrix' in meta:
        meta['homography_matrix'] = (
            np.diag([sx, sy, 1.0]).astype(np.float32) @
            meta['homography_matrix'])
    out = sample.new(metainfo=meta)
    for field in _INSTANCE_FIELDS:
        if field in out:
            setattr(out, field,
                    _rescale_instances(getattr(out, field), sx, sy, shape))
    return out


def _rescale_instances(inst, sx, sy, shape):
    out = inst.new()
    if 'bboxes' in inst:
        boxes = inst.bboxes
        if isinstance(boxes, BaseBoxes):
            boxes = boxes.clone()
            boxes.rescale_((sx, sy))
            boxes.clip_(shape)
        else:
            boxes = boxes * boxes.new_tensor([sx, sy, sx, sy])
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, shape[1])
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, shape[0])
        out.bboxes = boxes
    if 'masks' in inst:
        out.masks = inst.masks.resize(shape)
    return out
