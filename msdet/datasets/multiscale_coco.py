"""Deterministic multi-scale COCO-format instance-segmentation dataset.

A harder sibling of :mod:`msdet.datasets.synthetic_coco`, built so that
object scale matters and a small detector does not saturate in a CPU budget:

- object sizes (square root of the area) are log-uniform from
  ``MIN_SIZE`` = 6 px to 75% of the image side, plus clusters of small
  objects (6-18 px, 3-6 per cluster, up to two clusters per image): 4-21
  objects per image, 70% of them small by COCO's buckets;
- the six classes differ only in a fine marking inside the object (a dot, a
  ring, a cross, a bar, three stripes or a 2x2 checker, drawn at a random
  angle in a contrasting shade); the outline (circle, square, hexagon or
  triangle) and the colour are drawn independently of the class, so a small
  instance is hard to classify and a large one is easy;
- a cluttered background: coloured multi-octave value noise, random lines,
  speckles and unmarked shapes (hard negatives, not annotated);
- occlusion: larger objects lie behind smaller ones and objects may overlap
  as long as every occluded object keeps at least half of its area and of
  its marking visible and its visible part has no hole.

The same arguments always give byte-identical files, and image ``i`` of a
split does not depend on the number of images. Shapes are rendered with 4x
supersampling (anti-aliased edges); an object's mask is the set of pixels
it covers for at least half and that no object in front of it covers.
Masks are stored as COCO polygons that follow the pixel edges of that set
exactly (see :func:`mask_polygons`), ``area`` is its pixel count and
``bbox`` its pixel extent; each annotation also records
``visible_fraction`` (visible / unoccluded area). Layout (COCO 2017)::

    out_dir/annotations/instances_{train,val}2017.json
    out_dir/{train,val}2017/000000000001.png ...
"""
import colorsys
import math
import os

import numpy as np
from PIL import Image, ImageDraw

from ..evaluation.buckets import BUCKETS, area_bucket
from .synthetic_coco import _check_int, write_split

CLASSES = ('dot', 'ring', 'cross', 'bar', 'stripes', 'checker')
#: One colour per class for visualisation (the images do not use them).
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
           (245, 130, 48), (145, 30, 180)]
OUTLINES = ('circle', 'square', 'hexagon', 'triangle')
MIN_IMAGE_SIZE = 128
MIN_SIZE = 6.0         # smallest object, sqrt(area) in px
MAX_SIZE_RATIO = 0.75  # largest object, sqrt(area) / image side
MIN_VISIBLE = 0.5      # an occluded object keeps this much of its area
MIN_MARK_VISIBLE = 0.6  # ... and of its marking

_SPLITS = (('train', 0), ('val', 1))
_SS = 4                  # supersampling factor of the renderer
_SINGLES = (5, 10)       # objects per image outside clusters (inclusive)
_CLUSTERS = (0, 2)       # clusters per image
_CLUSTER_OBJECTS = (3, 6)
_CLUSTER_SIZE = (6.0, 18.0)
_CLUSTER_RADIUS = (12.0, 36.0)
_ATTEMPTS = 30
_NOISE = 6               # per-pixel, per-channel uniform noise amplitude
_INFO = {
    'description': 'msdet multi-scale synthetic shapes (deterministic, '
                   'generated locally)',
    'version': '1.0',
    'year': 2024,
    'contributor': 'msdet',
    'url': '',
    'date_created': '1970-01-01',
}
# Unit-area outline: circumradius of a shape of area 1.
_UNIT_RADIUS = {
    'circle': 1 / math.sqrt(math.pi),
    'square': 1 / math.sqrt(2),
    'hexagon': 1 / math.sqrt(1.5 * math.sqrt(3)),
    'triangle': 1 / math.sqrt(0.75 * math.sqrt(3)),
}
_VERTICES = {'circle': 32, 'square': 4, 'hexagon': 6, 'triangle': 3}
# Inradius / circumradius: markings are sized by the inradius.
_INRADIUS = {k: math.cos(math.pi / n) for k, n in _VERTICES.items()}


# --------------------------------------------------------------------------
# Masks to COCO polygons
# --------------------------------------------------------------------------
def _boundary_loops(mask):
    """Closed loops along the pixel edges of a boolean mask, as lists of
    corner points ``(x, y)`` (pixel ``(r, c)`` spans ``[c, c + 1] x
    [r, r + 1]``), one loop per 4-connected component boundary and per hole.
    Outer boundaries run clockwise on screen (positive shoelace area with y
    down), holes counter-clockwise (negative)."""
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    rs, cs = np.nonzero(m)
    edges = {}

    def add(keep, x0, y0, x1, y1):
        for a, b, c, d in zip(x0[keep], y0[keep], x1[keep], y1[keep]):
            edges.setdefault((int(a), int(b)), []).append((int(c), int(d)))

    # Pixel (r, c) of the padded mask is (r - 1, c - 1) of ``mask``.
    x, y = cs - 1, rs - 1
    add(~m[rs - 1, cs], x, y, x + 1, y)              # top: east
    add(~m[rs, cs + 1], x + 1, y, x + 1, y + 1)      # right: south
    add(~m[rs + 1, cs], x + 1, y + 1, x, y + 1)      # bottom: west
    add(~m[rs, cs - 1], x, y + 1, x, y)              # left: north
    loops = []
    while edges:
        start = next(iter(edges))
        first = _take(edges, start, edges[start][-1])
        cur, direction = first, _step(start, first)
        corners = []
        while True:
            # Candidates: this vertex's unused edges, and at the start the
            # first edge (taking it closes the loop). Two candidates meet
            # at a corner shared by two diagonal pixels: turn right, which
            # keeps the components 4-connected.
            cands = [(p, False) for p in edges.get(cur, ())]
            if cur == start:
                cands.append((first, True))
            if len(cands) == 1:
                nxt, closing = cands[0]
            else:
                right = (-direction[1], direction[0])
                nxt, closing = next(c for c in cands
                                    if _step(cur, c[0]) == right)
            step = _step(cur, nxt)
            if step != direction:
                corners.append(cur)
            if closing:
                break
            _take(edges, cur, nxt)
            cur, direction = nxt, step
        loops.append(corners)
    return loops


def _step(a, b):
    return (b[0] - a[0], b[1] - a[1])


def _take(edges, vertex, end):
    """Remove the edge ``vertex -> end``; return ``end``."""
    outs = edges[vertex]
    outs.remove(end)
    if not outs:
        del edges[vertex]
    return end


def _signed_area(loop):
    pts = np.asarray(loop, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def mask_polygons(mask, offset=(0, 0)):
    """COCO polygons of a boolean mask that has no holes.

    Returns ``(polygons, holes)``: one flat ``[x0, y0, x1, y1, ...]`` list
    per 4-connected component, following the pixel edges, so pycocotools
    rasterises their union back to exactly ``mask``; ``holes`` counts the
    enclosed background regions (polygons cannot express them, callers
    reject such masks). ``offset`` ``(x, y)`` is added to every vertex.
    """
    polygons, holes = [], 0
    for loop in _boundary_loops(mask):
        if _signed_area(loop) < 0:
            holes += 1
            continue
        polygons.append([float(v + o) for p in loop
                         for v, o in zip(p, offset)])
    return polygons, holes


def _has_hole(mask):
    return any(_signed_area(loop) < 0 for loop in _boundary_loops(mask))


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------
def _coverage(x0, y0, w, h, shapes):
    """Fraction of each pixel of the ``w`` x ``h`` window at ``(x0, y0)``
    covered by ``shapes``: ``(points, fill)`` polygons drawn in order, fill
    1 adds and 0 erases (4x supersampled)."""
    im = Image.new('L', (w * _SS, h * _SS), 0)
    draw = ImageDraw.Draw(im)
    for pts, fill in shapes:
        draw.polygon([((px - x0) * _SS, (py - y0) * _SS) for px, py in pts],
                     fill=255 * fill)
    sub = np.asarray(im, dtype=np.float32).reshape(h, _SS, w, _SS)
    return sub.mean(axis=(1, 3)) / 255.0


def _regular(cx, cy, radius, n, angle):
    ang = angle + np.arange(n) * (2 * np.pi / n)
    return list(zip(cx + radius * np.cos(ang), cy + radius * np.sin(ang)))


def _rect(cx, cy, angle, u0, u1, v0, v1):
    """Rectangle ``[u0, u1] x [v0, v1]`` of the frame rotated by ``angle``
    around ``(cx, cy)``."""
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + u * c - v * s, cy + u * s + v * c)
            for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))]


def _marking(cls, cx, cy, r, angle):
    """The class's marking as ``(points, fill)`` polygons; ``r`` is the
    outline's inradius."""
    if cls == 'dot':
        return [(_regular(cx, cy, 0.42 * r, 24, angle), 1)]
    if cls == 'ring':
        return [(_regular(cx, cy, 0.7 * r, 24, angle), 1),
                (_regular(cx, cy, 0.4 * r, 24, angle), 0)]
    if cls == 'cross':
        a, t = 0.7 * r, 0.16 * r
        return [(_rect(cx, cy, angle, -a, a, -t, t), 1),
                (_rect(cx, cy, angle, -t, t, -a, a), 1)]
    if cls == 'bar':
        a, t = 0.7 * r, 0.2 * r
        return [(_rect(cx, cy, angle, -a, a, -t, t), 1)]
    if cls == 'stripes':
        a, t, d = 0.6 * r, 0.11 * r, 0.42 * r
        return [(_rect(cx, cy, angle, -a, a, o - t, o + t), 1)
                for o in (-d, 0.0, d)]
    if cls == 'checker':
        q = 0.55 * r
        return [(_rect(cx, cy, angle, 0, q, 0, q), 1),
                (_rect(cx, cy, angle, -q, 0, -q, 0), 1)]
    raise ValueError(f'unknown class {cls!r}')  # pragma: no cover


def _value_noise(rng, size, cells):
    """Bilinearly upsampled ``cells`` x ``cells`` uniform noise in [-1, 1],
    three channels (float32, HxWx3)."""
    coarse = rng.uniform(-1, 1, size=(cells + 1, cells + 1, 3))
    t = np.linspace(0, cells, size)
    i0 = np.minimum(t.astype(int), cells - 1)
    f = (t - i0)[:, None]
    rows = coarse[i0] * (1 - f)[:, :, None] + coarse[i0 + 1] * f[:, :, None]
    return (rows[:, i0] * (1 - f)[None, :, :] +
            rows[:, i0 + 1] * f[None, :, :]).astype(np.float32)


def _background(rng, size):
    base = np.array(_hsv(rng.uniform(0, 1), rng.uniform(0.05, 0.4),
                         rng.uniform(0.35, 0.7)), dtype=np.float32)
    img = np.broadcast_to(base, (size, size, 3)).astype(np.float32)
    for cells, amp in ((3, 45.0), (8, 28.0), (24, 16.0), (64, 10.0)):
        img += amp * _value_noise(rng, size, cells)
    return img


def _hsv(h, s, v):
    return tuple(255.0 * c for c in colorsys.hsv_to_rgb(h, s, v))


def _colors(rng):
    """An object's fill colour and its marking's contrasting shade."""
    h, s, v = rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.9)
    dv = rng.uniform(0.35, 0.5)
    return (np.array(_hsv(h, s, v), dtype=np.float32),
            np.array(_hsv(h, s * 0.8, v - dv if v > 0.6 else v + dv),
                     dtype=np.float32))


def _paint(img, x0, y0, alpha, color):
    h, w = alpha.shape
    win = img[y0:y0 + h, x0:x0 + w]
    win += alpha[:, :, None] * (color - win)


def _window(pts, size):
    """Integer pixel window ``(x0, y0, w, h)`` around ``pts``, or None if
    it does not lie inside the image."""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, y0 = int(math.floor(min(xs))), int(math.floor(min(ys)))
    x1, y1 = int(math.ceil(max(xs))), int(math.ceil(max(ys)))
    if x0 < 0 or y0 < 0 or x1 > size or y1 > size:
        return None
    return x0, y0, max(x1 - x0, 1), max(y1 - y0, 1)


def _clutter(rng, img, size):
    """Lines, speckles and unmarked shapes (not annotated)."""
    for _ in range(int(rng.integers(3, 9))):  # lines
        (ax, ay), (bx, by) = rng.uniform(0, size, (2, 2))
        half = rng.uniform(0.5, 1.6)
        ang = math.atan2(by - ay, bx - ax)
        length = math.hypot(bx - ax, by - ay)
        pts = _rect(ax, ay, ang, 0, length, -half, half)
        _paint_shape(img, size, [(pts, 1)], _colors(rng)[0])
    for _ in range(int(rng.integers(5, 16))):  # speckles
        cx, cy = rng.uniform(3, size - 3, 2)
        pts = _regular(cx, cy, rng.uniform(0.8, 2.2), 12, 0.0)
        _paint_shape(img, size, [(pts, 1)], _colors(rng)[0])
    hi = math.log(MAX_SIZE_RATIO * size * 0.5)
    for _ in range(int(rng.integers(1, 5))):  # unmarked shapes
        kind = OUTLINES[int(rng.integers(len(OUTLINES)))]
        radius = math.exp(rng.uniform(math.log(MIN_SIZE), hi)) * \
            _UNIT_RADIUS[kind]
        cx, cy = rng.uniform(0, size, 2)
        pts = _regular(cx, cy, radius, _VERTICES[kind],
                       rng.uniform(0, 2 * np.pi))
        _paint_shape(img, size, [(pts, 1)], _colors(rng)[0])


def _paint_shape(img, size, shapes, color):
    """Paint polygons clipped to the image (clutter may cross the border)."""
    pts = [p for poly, _ in shapes for p in poly]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, y0 = max(int(math.floor(min(xs))), 0), max(int(math.floor(min(ys))), 0)
    x1 = min(int(math.ceil(max(xs))), size)
    y1 = min(int(math.ceil(max(ys))), size)
    if x1 <= x0 or y1 <= y0:
        return
    _paint(img, x0, y0, _coverage(x0, y0, x1 - x0, y1 - y0, shapes), color)


# --------------------------------------------------------------------------
# Object placement
# --------------------------------------------------------------------------
def _plan(rng, size):
    """Sizes (sqrt area) and cluster ids (-1: none) of one image's objects,
    plus the cluster centres and radii."""
    lo, hi = math.log(MIN_SIZE), math.log(MAX_SIZE_RATIO * size)
    sizes = [math.exp(rng.uniform(lo, hi))
             for _ in range(int(rng.integers(_SINGLES[0], _SINGLES[1] + 1)))]
    cluster = [-1] * len(sizes)
    clusters = []
    for k in range(int(rng.integers(_CLUSTERS[0], _CLUSTERS[1] + 1))):
        radius = rng.uniform(*_CLUSTER_RADIUS)
        clusters.append((rng.uniform(radius, size - radius, 2), radius))
        for _ in range(int(rng.integers(_CLUSTER_OBJECTS[0],
                                        _CLUSTER_OBJECTS[1] + 1))):
            sizes.append(math.exp(rng.uniform(math.log(_CLUSTER_SIZE[0]),
                                              math.log(_CLUSTER_SIZE[1]))))
            cluster.append(k)
    return sizes, cluster, clusters


def _candidate(rng, size, side, centre):
    """Outline points, window, inradius and centre of one placement try;
    the window is None if the shape does not fit the image there (with
    ``centre`` None: anywhere)."""
    kind = OUTLINES[int(rng.integers(len(OUTLINES)))]
    radius = side * _UNIT_RADIUS[kind]
    angle = rng.uniform(0, 2 * np.pi)
    pts = np.array(_regular(0.0, 0.0, radius, _VERTICES[kind], angle))
    lo, hi = -pts.min(axis=0), size - pts.max(axis=0)
    if centre is None:
        if np.any(lo > hi):
            return None, None, None, (None, None)
        cx, cy = rng.uniform(lo, hi)
    else:
        (ccx, ccy), spread = centre
        rho, phi = spread * math.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        cx, cy = ccx + rho * math.cos(phi), ccy + rho * math.sin(phi)
    pts = [(x + cx, y + cy) for x, y in pts]
    return pts, _window(pts, size), radius * _INRADIUS[kind], (cx, cy)


def _occlusion_ok(labels, objects, new_mask, x0, y0):
    """Whether covering ``new_mask`` (window at ``x0, y0``) keeps every
    object behind it visible enough and free of holes."""
    h, w = new_mask.shape
    hit = np.unique(labels[y0:y0 + h, x0:x0 + w][new_mask])
    for k in hit[hit > 0] - 1:
        obj = objects[k]
        bx0, by0, bw, bh = obj['window']
        vis = labels[by0:by0 + bh, bx0:bx0 + bw] == k + 1
        cover = np.zeros_like(vis)
        # new_mask in the object's window coordinates
        ix0, iy0 = max(x0, bx0), max(y0, by0)
        ix1, iy1 = min(x0 + w, bx0 + bw), min(y0 + h, by0 + bh)
        cover[iy0 - by0:iy1 - by0, ix0 - bx0:ix1 - bx0] = \
            new_mask[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
        vis &= ~cover
        if vis.sum() < MIN_VISIBLE * obj['full_area'] or \
                (vis & obj['mark']).sum() < MIN_MARK_VISIBLE * \
                obj['mark_area'] or _has_hole(vis):
            return False
    return True


def _render_image(rng, size):
    """One image: (uint8 HxWx3, objects, counters)."""
    img = _background(rng, size)
    _clutter(rng, img, size)
    sizes, cluster, clusters = _plan(rng, size)
    labels = np.zeros((size, size), dtype=np.int32)
    objects, skipped = [], 0
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        cls = int(rng.integers(len(CLASSES)))
        fill, shade = _colors(rng)
        centre = clusters[cluster[i]] if cluster[i] >= 0 else None
        side, placed = sizes[i], None
        for _ in range(_ATTEMPTS):
            pts, win, inradius, (cx, cy) = _candidate(rng, size, side, centre)
            if pts is None:
                side *= 0.95  # too large for the image at this angle
            if win is None:
                continue
            x0, y0, w, h = win
            cover = _coverage(x0, y0, w, h, [(pts, 1)])
            mask = cover >= 0.5
            if mask.sum() < 1 or not _occlusion_ok(labels, objects, mask,
                                                   x0, y0):
                continue
            angle = rng.uniform(0, 2 * np.pi)
            mark = _coverage(x0, y0, w, h,
                             _marking(CLASSES[cls], cx, cy, inradius, angle))
            placed = (win, cover, mask, np.minimum(mark, cover))
            break
        if placed is None:
            skipped += 1
            continue
        (x0, y0, w, h), cover, mask, mark = placed
        _paint(img, x0, y0, cover, fill)
        _paint(img, x0, y0, mark, shade)
        labels[y0:y0 + h, x0:x0 + w][mask] = len(objects) + 1
        mark_mask = (mark >= 0.5) & mask
        objects.append(dict(cls=cls, window=(x0, y0, w, h),
                            full_area=int(mask.sum()), mark=mark_mask,
                            mark_area=int(mark_mask.sum()),
                            cluster=cluster[i] >= 0))
    img += rng.integers(-_NOISE, _NOISE + 1, size=img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return img, labels, objects, skipped


def _annotations(labels, objects):
    """COCO annotation fields of every visible object, in drawing order."""
    out = []
    for k, obj in enumerate(objects):
        x0, y0, w, h = obj['window']
        vis = labels[y0:y0 + h, x0:x0 + w] == k + 1
        area = int(vis.sum())
        polygons, holes = mask_polygons(vis, (x0, y0))
        assert holes == 0 and area > 0, 'placement keeps masks hole-free'
        ys, xs = np.nonzero(vis)
        out.append(dict(
            category_id=obj['cls'] + 1, segmentation=polygons,
            area=float(area),
            bbox=[float(x0 + xs.min()), float(y0 + ys.min()),
                  float(xs.max() - xs.min() + 1),
                  float(ys.max() - ys.min() + 1)],
            iscrowd=0,
            visible_fraction=round(area / obj['full_area'], 3),
            cluster=bool(obj['cluster'])))
    return out


# --------------------------------------------------------------------------
# Dataset and statistics
# --------------------------------------------------------------------------
def dataset_statistics(coco):
    """Counts of a COCO annotation dict (any COCO file, e.g. real COCO):
    images, objects, objects per COCO area bucket, per category and per
    category and bucket, objects per image (mean / min / max) and
    sqrt(area) percentiles. Annotations with ``visible_fraction`` /
    ``cluster`` fields (this generator's) also give occluded / clustered
    counts."""
    anns = [a for a in coco['annotations'] if not a.get('iscrowd', 0)]
    names = {c['id']: c['name'] for c in coco['categories']}
    buckets = dict.fromkeys(BUCKETS, 0)
    per_cat = {n: dict.fromkeys(BUCKETS, 0) for n in names.values()}
    per_image = dict.fromkeys((im['id'] for im in coco['images']), 0)
    for a in anns:
        b = area_bucket(a['area'])
        buckets[b] += 1
        per_cat[names[a['category_id']]][b] += 1
        per_image[a['image_id']] += 1
    counts = list(per_image.values()) or [0]
    sides = np.sqrt([a['area'] for a in anns]) if anns else np.zeros(1)
    stats = dict(
        num_images=len(coco['images']), num_objects=len(anns),
        buckets=buckets,
        bucket_fractions={b: round(n / max(len(anns), 1), 3)
                          for b, n in buckets.items()},
        per_category={n: sum(v.values()) for n, v in per_cat.items()},
        per_category_bucket=per_cat,
        objects_per_image=dict(mean=round(float(np.mean(counts)), 2),
                               min=int(min(counts)), max=int(max(counts))),
        sqrt_area_percentiles={
            f'p{q}': round(float(np.percentile(sides, q)), 1)
            for q in (0, 10, 25, 50, 75, 90, 100)})
    if anns and all('visible_fraction' in a for a in anns):
        stats['occluded'] = sum(a['visible_fraction'] < 1 for a in anns)
    if anns and all('cluster' in a for a in anns):
        stats['in_clusters'] = sum(bool(a['cluster']) for a in anns)
    return stats


def _make_split(out_dir, split, split_code, num_images, size, seed):
    def render(rng, index):
        img, labels, objects, skipped = _render_image(rng, size)
        return img, _annotations(labels, objects), skipped

    ann_file, img_dir, coco, skipped = write_split(
        out_dir, split, split_code, num_images, size, seed, render, CLASSES,
        _INFO)
    stats = dataset_statistics(coco)
    stats.update(ann_file=ann_file, img_dir=img_dir, skipped_objects=skipped)
    return stats


def make_multiscale_coco(out_dir, num_train=400, num_val=100, image_size=256,
                         seed=0):
    """Generate the dataset under ``out_dir`` and return its statistics.

    The same arguments always give byte-identical JSON and PNG files.
    Returns a dict with ``out_dir``, ``image_size``, ``seed``, ``classes``
    and, per split (``'train'``, ``'val'``), :func:`dataset_statistics`
    plus ``ann_file``, ``img_dir`` and ``skipped_objects`` (planned objects
    that found no place within the occlusion limits).

    Raises:
        ValueError: on a non-positive image count, ``image_size`` < 128 or a
            negative ``seed``.
    """
    _check_int('num_train', num_train, 1)
    _check_int('num_val', num_val, 1)
    _check_int('image_size', image_size, MIN_IMAGE_SIZE,
               ' (a large object needs area > 96**2 px)')
    _check_int('seed', seed, 0)
    out_dir = os.fspath(out_dir)
    os.makedirs(os.path.join(out_dir, 'annotations'), exist_ok=True)
    summary = {'out_dir': out_dir, 'image_size': int(image_size),
               'seed': int(seed), 'classes': list(CLASSES)}
    for split, code in _SPLITS:
        num = num_train if split == 'train' else num_val
        summary[split] = _make_split(out_dir, split, code, int(num),
                                     int(image_size), int(seed))
    return summary
