"""Converting foreign checkpoints into msdet backbone (or whole-model)
checkpoints.

One source layout = one script in ``tools/model_converters/`` (mmdet's
convention, ``python tools/model_converters/X.py SRC DST``). The script
describes its layout with a :class:`Converter` and runs its command line::

    CONVERTER = Converter(
        layout='torchvision ResNet (ImageNet classifier)',
        description=__doc__,     # the script's --help
        target_cfg=target_cfg,   # (source, args) -> msdet backbone config
        equivalence=equivalence, # (args, src) -> dict(kind=..., statement=...)
        make_rule=make_rule,     # optional: (target, args) -> rule
        drop=CLASSIFIER,         # optional: key prefixes dropped on purpose
        add_arguments=None)      # optional: (parser) -> None, layout options

    def main(argv=None):
        return CONVERTER.main(argv)

- ``target_cfg(source, args)``: the msdet backbone config the checkpoint
  becomes, usually inferred from the source's shapes (``infer_resnet_cfg``,
  ``infer_depth``, ``infer_resnet_widths``); ``source`` is a ``SourceDict``.
- ``make_rule(target, args)``: a ``rule(key, src)`` giving, for every key of
  the target backbone's ``state_dict``, its tensor, built from the source
  tensors it takes with ``src.take(...)`` / ``src.take_all(...)`` (a key may
  be taken several times, e.g. one BN copied into every scale-aware BN).
  ``target`` is the built msdet backbone, for its per-block layout (groups,
  branches). Default: ``same_key``, the rule of layouts with msdet's keys.
- ``drop``: source key prefixes dropped on purpose, each with the reason
  that is reported (default ``CLASSIFIER``: ``fc.``).
- ``equivalence(args, src)``: what the result is relative to the source,
  ``dict(kind=one of EQUIVALENCE, statement=...)``, printed and stored.

``Converter.convert`` reads nothing and writes nothing: it turns a
``SourceDict`` into the backbone config and state_dict. ``Converter.main``
is the command line: it reads the source (``{'state_dict': ...}``,
``{'model': ...}`` or a bare state_dict, ``module.`` prefixes stripped),
converts, and refuses to write anything if a source key is unknown (neither
taken nor dropped), a key the rule needs is missing, or a tensor has the
wrong shape: one ``ConversionError`` names them all, and the cause where
the source's keys carry a ``backbone.`` prefix (a whole detector's or
classifier's checkpoint). The only defaults it fills are absent BN
``num_batches_tracked`` counters (old torch checkpoints lack them; unused
with a BN momentum), reported by name. The output
``{'state_dict': ..., 'meta': {...}}`` is written atomically with the
backbone's own keys (no ``backbone.`` prefix), so
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` loads it into the
backbone; ``meta`` records the source, the backbone config, the equivalence
and every dropped, filled or noted key.

A released whole model (a segmentor, a detector) converts the same way with
``Converter(..., scope='mmseg')`` (or ``'mmdet'``): ``target_cfg`` then
gives the model's config, the rule every key of the built model
(``backbone.*``, ``decode_head.*``, ...), and the output is a whole-model
checkpoint (``meta['model']``). A backbone's rule runs unchanged on the
source's keys under a prefix through ``SourceDict.view``/``SourceView``.
"""
import argparse
import os.path as osp
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping

import torch
from mmengine.config import ConfigDict
from mmengine.registry import MODELS, DefaultScope

from ..utils.checkpoint import load_local_checkpoint
from ..utils.fileio import atomic_open

NBT = 'num_batches_tracked'
#: What a converted backbone is, relative to the source model (meta's
#: ``equivalence['kind']``): the same function; the same function under
#: stated conditions (input sizes...); close to it; or only initial weights.
EQUIVALENCE = ('exact', 'conditional', 'approximate', 'warm start')
#: The usual ``drop`` of an ImageNet classification checkpoint.
CLASSIFIER = {'fc.': 'ImageNet classifier head (a backbone has none)'}


class ConversionError(ValueError):
    """The source does not convert; the message names every bad key."""


class _Missing(Exception):
    """A rule asked for absent source keys (already recorded)."""


class SourceDict:
    """The source state_dict, recording what the conversion uses.

    ``take`` marks keys as used (a key may be taken more than once, e.g. one
    BN copied into several); keys never taken nor ``drop``-ped are unknown.
    """

    def __init__(self, state_dict):
        self._sd = OrderedDict(state_dict)
        self.used, self.missing, self.filled = set(), [], []
        self.dropped = OrderedDict()  # key -> reason
        self.notes = []

    def __contains__(self, key):
        return key in self._sd

    def __len__(self):
        return len(self._sd)

    def keys(self):
        return self._sd.keys()

    def shape(self, key):
        """Shape of a source tensor without taking it (``None`` if absent)."""
        return tuple(self._sd[key].shape) if key in self._sd else None

    def take_all(self, keys):
        """The tensors of ``keys``; all absent ones are recorded as missing
        (an absent ``*.num_batches_tracked`` is filled with 0 instead)."""
        keys = list(keys)
        absent = [k for k in keys if k not in self._sd
                  and not k.endswith('.' + NBT)]
        self.used.update(k for k in keys if k in self._sd)
        if absent:
            self.missing += [k for k in absent if k not in self.missing]
            raise _Missing(absent)
        values = []
        for k in keys:
            if k not in self._sd:
                self.filled.append(k)
                values.append(torch.tensor(0, dtype=torch.long))
            else:
                values.append(self._sd[k])
        return values

    def take(self, key):
        return self.take_all([key])[0]

    def drop(self, prefix, reason):
        for k in self._sd:
            if k.startswith(prefix) and k not in self.used:
                self.dropped[k] = reason

    def note(self, message):
        """A remark for the report and the output's meta."""
        self.notes.append(message)

    def unknown(self):
        return [k for k in self._sd
                if k not in self.used and k not in self.dropped]

    def view(self, prefix):
        """The keys under ``prefix`` without it (``SourceView``)."""
        return SourceView(self, prefix)


class SourceView:
    """The keys of a ``SourceDict`` under ``prefix``, without it (e.g. a
    detector's ``backbone.``): a backbone's ``target_cfg`` and rule run on
    it unchanged; what they take, miss or note is recorded in the parent
    under the full key."""

    def __init__(self, parent, prefix):
        self.parent, self.prefix = parent, prefix

    def __contains__(self, key):
        return self.prefix + key in self.parent

    def __len__(self):
        return len(self.keys())

    def keys(self):
        n = len(self.prefix)
        return [k[n:] for k in self.parent.keys() if k.startswith(self.prefix)]

    def shape(self, key):
        return self.parent.shape(self.prefix + key)

    def take_all(self, keys):
        return self.parent.take_all([self.prefix + k for k in keys])

    def take(self, key):
        return self.take_all([key])[0]

    def note(self, message):
        self.parent.note(message)


def same_key(key, src):
    """Rule for layouts whose keys equal msdet's (torchvision ResNets)."""
    return src.take(key)


# ------------------------------------------------------------------ reading
def unwrap_state_dict(ckpt, where='checkpoint'):
    """The state_dict inside ``{'state_dict'}``, ``{'model'}`` or a bare
    state_dict, with ``module.`` (DataParallel) prefixes stripped."""
    if not isinstance(ckpt, Mapping):
        raise ConversionError(f'{where}: holds a {type(ckpt).__name__}, not a '
                              'state_dict or a dict with one.')
    for wrapper in ('state_dict', 'model'):
        if isinstance(ckpt.get(wrapper), Mapping):
            ckpt = ckpt[wrapper]
            break
    bad = [k for k, v in ckpt.items() if not torch.is_tensor(v)]
    if bad:
        raise ConversionError(
            f"{where}: not a state_dict (no 'state_dict' or 'model' entry, "
            f'and {len(bad)} entries are not tensors: {_names(bad)}).')
    out = OrderedDict()
    for key, value in ckpt.items():
        new = key
        while new.startswith('module.'):
            new = new[len('module.'):]
        if new in out:
            raise ConversionError(f"{where}: keys {key!r} and 'module.'-less "
                                  f'{new!r} both present.')
        out[new] = value
    return out


def load_source(path, trust=False):
    """Read a source checkpoint (msdet's loader: clear errors for a missing
    or broken file) and return its state_dict (``unwrap_state_dict``).

    A file holding non-tensor Python objects that torch's safe loader
    refuses (e.g. pickled training arguments) is unpickled with
    ``weights_only=False`` only if ``trust=True``: only for trusted files.
    """
    try:
        return unwrap_state_dict(load_local_checkpoint(path, 'cpu'),
                                 f'checkpoint {str(path)!r}')
    except pickle.UnpicklingError as err:  # weights_only refused a type
        refused = err
    except (FileNotFoundError, RuntimeError) as err:
        raise ConversionError(str(err)) from None
    if not trust:
        raise ConversionError(
            f'checkpoint {str(path)!r} holds Python objects besides tensors '
            f"that torch's safe loader refuses ({refused}). If you trust the "
            'file, rerun with --trust-source.')
    try:
        ckpt = torch.load(osp.expanduser(str(path)), map_location='cpu',
                          weights_only=False)
    except Exception as err:
        raise ConversionError(f'checkpoint {str(path)!r} cannot be read '
                              f'({type(err).__name__}: {err}).') from None
    return unwrap_state_dict(ckpt, f'checkpoint {str(path)!r}')


# ------------------------------------------------------------ architecture
def stage_blocks(source, num_stages=4):
    """Blocks per stage, counted from ``layer{i}.{j}.`` keys."""
    counts = []
    for i in range(1, num_stages + 1):
        idx = {int(m.group(1)) for m in
               (re.match(rf'layer{i}\.(\d+)\.', k) for k in source.keys())
               if m}
        counts.append(max(idx) + 1 if idx else 0)
    return tuple(counts)


def infer_depth(source, arch_settings, name):
    """The depth of ``arch_settings`` whose blocks per stage the source has."""
    counts = stage_blocks(source)
    for depth, (_, blocks) in arch_settings.items():
        if tuple(blocks) == counts:
            return depth
    known = {d: tuple(b) for d, (_, b) in arch_settings.items()}
    raise ConversionError(
        f'the source has {counts} blocks per stage (layer1..layer4); '
        f'{name} depths have {known}.')


def source_shape(source, key):
    if isinstance(source, (SourceDict, SourceView)):
        shape = source.shape(key)
    else:
        shape = tuple(source[key].shape) if key in source else None
    if shape is None:
        raise ConversionError(f'the source has no {key!r}, needed to infer '
                              'the architecture; is it the right layout?')
    return shape


def infer_resnet_cfg(source, arch_settings, name,
                     conv2_key='layer1.0.conv2.weight'):
    """``depth`` (``infer_depth``) and the widths (``infer_resnet_widths``)
    of a ResNet/ResNeXt-shaped source."""
    return dict(depth=infer_depth(source, arch_settings, name),
                **infer_resnet_widths(source, conv2_key))


def infer_resnet_widths(source, conv2_key='layer1.0.conv2.weight',
                        width_keys=('layer1.0.conv1.weight', )):
    """``base_channels``, ``stem_channels``, ``groups`` and ``base_width``
    (each where not mmdet's default) of a ResNet/ResNeXt-shaped source, read
    from the stem and block ``layer1.0``. ``conv2_key``: a tensor of the
    block's 3x3 conv with ``C_in / groups`` input channels (the whole conv
    in torchvision); ``width_keys``: the block's first convs, whose output
    channels add up to its width (one, or one per branch of a split
    block)."""
    cfg = {}
    stem = source_shape(source, 'conv1.weight')[0]
    width = sum(source_shape(source, k)[0] for k in width_keys)
    base = source_shape(source, 'layer1.0.conv3.weight')[0] // 4
    per_group = source_shape(source, conv2_key)[1]
    if width % per_group:
        raise ConversionError(f'{conv2_key}: {per_group} input channels per '
                              f'group do not divide the width {width}.')
    groups = width // per_group
    if base != 64:
        cfg['base_channels'] = base
    if stem != base:
        cfg['stem_channels'] = stem
    if groups > 1:
        cfg.update(groups=groups, base_width=width // groups)
    return cfg


def build_target(cfg, scope=None):
    """The msdet backbone of ``cfg``, or with ``scope`` ('mmdet',
    'mmseg') the whole model built in that registry scope (no pretrained
    init: only its keys, shapes and layout are used)."""
    cfg = ConfigDict(dict(cfg, init_cfg=None))  # as built from a config
    if scope is None:
        return MODELS.build(cfg)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg)


# -------------------------------------------------------------- conversion
def convert_state_dict(source, target_state, rule, drop=None):
    """Apply ``rule`` to every key of ``target_state``.

    Returns ``(state_dict, src)``: the converted tensors and the
    ``SourceDict`` with what was used, dropped, filled and noted. Raises one
    ``ConversionError`` naming every missing, unknown or mismatched key.
    """
    src = source if isinstance(source, SourceDict) else SourceDict(source)
    for prefix, reason in (drop or {}).items():
        src.drop(prefix, reason)
    out, problems = OrderedDict(), []
    for key, ref in target_state.items():
        try:
            value = rule(key, src)
        except _Missing:
            continue
        except ConversionError as err:
            problems.append(f'{key}: {err}')
            continue
        if tuple(value.shape) != tuple(ref.shape):
            problems.append(f'{key}: msdet has shape {tuple(ref.shape)}, the '
                            f'source gives {tuple(value.shape)}')
            continue
        out[key] = value.detach().clone().contiguous()
    unknown = src.unknown()
    if src.missing or unknown or problems:
        parts = ['the source does not match the target backbone:']
        for title, keys in (
                ('missing in the source', src.missing),
                ('unknown source keys (not used by the conversion)', unknown),
                ('wrong shapes or values', problems)):
            if keys:
                parts.append(f'{title} ({len(keys)}):')
                parts += [f'  {k}' for k in keys]
        raise ConversionError('\n'.join(parts))
    return out, src


def save_backbone_checkpoint(path, state_dict, meta):
    """Write ``{'state_dict': ..., 'meta': ...}`` atomically."""
    with atomic_open(path, 'wb') as f:
        torch.save({'state_dict': state_dict, 'meta': meta}, f)


def _names(keys, limit=8):
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)'
                    if len(keys) > limit else '')


# --------------------------------------------------------------------- API
def _prefix_cause(keys, prefix='backbone.'):
    """Why a source whose keys carry a ``backbone.`` prefix does not
    convert, or ``None`` if none does."""
    keys = list(keys)
    prefixed = [k for k in keys if k.startswith(prefix)]
    if not prefixed:
        return None
    others = sorted({k.split('.', 1)[0] + '.' for k in keys
                     if not k.startswith(prefix)})
    return (f"{len(prefixed)} of the source's {len(keys)} keys start with "
            f"{prefix!r} (e.g. {prefixed[0]!r}"
            + (f"; the others: {', '.join(others)}" if others else '') +
            "): a whole model's checkpoint (an mmdet detector, or an "
            'mmpretrain classifier), not a backbone\'s own keys (e.g. '
            "'conv1.weight'). Convert the backbone's ImageNet checkpoint, "
            f'or save the tensors under {prefix!r} without the prefix and '
            'convert that file.')


class Converter:
    """One source checkpoint layout and the msdet backbone it converts to.

    A script in ``tools/model_converters/`` builds one and calls ``main``
    (see the module docstring for the fields' contracts).

    Args:
        layout (str): name of the source layout, for ``--help`` and
            ``meta['source_layout']``.
        target_cfg (callable): ``(source, args) -> dict``, the msdet
            backbone config (``type`` and arguments) the source becomes,
            or with ``scope`` the whole model's config.
        equivalence (callable): ``(args, src) -> dict(kind, statement)``,
            ``kind`` one of ``EQUIVALENCE``.
        make_rule (callable, optional): ``(target, args) -> rule`` with
            ``rule(key, src) -> tensor`` for every target key. Default: the
            source has msdet's keys (``same_key``).
        drop (dict): source key prefix -> reason it is dropped on purpose.
            Default ``CLASSIFIER``.
        add_arguments (callable, optional): ``(parser) -> None``, adds the
            layout's own command-line options.
        description (str): the command line's description (``--help``).
        scope (str, optional): for a whole model's checkpoint (a segmentor,
            a detector): the registry scope its config builds in ('mmdet',
            'mmseg'). The output's keys are then the model's own
            (``backbone.``, ``decode_head.``, ...), loaded as a whole
            checkpoint (``tools/test.py CONFIG DST``, ``load_from``), and
            ``meta['model']`` holds the config (``meta['backbone']``
            without ``scope``).
        dataset_meta (callable, optional): ``(src) -> dict``, written as
            ``meta['dataset_meta']`` (e.g. ``classes``), which mmdet's and
            mmseg's inference APIs read.
        usage (callable, optional): ``(cfg, dst) -> str``, the report's
            last line, how to use the output. Default: the backbone's
            ``init_cfg``.
    """

    def __init__(self, layout, target_cfg, equivalence, make_rule=None,
                 drop=CLASSIFIER, add_arguments=None, description='',
                 scope=None, dataset_meta=None, usage=None):
        self.layout, self.description = layout, description
        self.target_cfg, self.equivalence = target_cfg, equivalence
        self.make_rule, self.add_arguments = make_rule, add_arguments
        self.drop = dict(drop)
        self.scope, self.dataset_meta, self.usage = scope, dataset_meta, usage

    def convert(self, source, args):
        """Convert ``source`` (a state_dict or ``SourceDict``) with the
        parsed options ``args``; returns ``(cfg, state_dict, src)``: the
        backbone config, its converted tensors and the ``SourceDict`` with
        what was used, dropped, filled and noted. Raises one
        ``ConversionError`` naming every bad key (and the cause, where the
        keys carry a ``backbone.`` prefix)."""
        source = source if isinstance(source, SourceDict) else \
            SourceDict(source)
        try:
            cfg = self.target_cfg(source, args)
            target = build_target(cfg, self.scope)
            rule = same_key if self.make_rule is None else \
                self.make_rule(target, args)
            state_dict, src = convert_state_dict(
                source, target.state_dict(), rule, self.drop)
        except (ConversionError, ValueError) as err:
            cause = None if self.scope else _prefix_cause(source.keys())
            if cause is None:
                raise
            raise ConversionError(f'{cause}\nWhat failed: {err}') from None
        return cfg, state_dict, src

    def parser(self):
        """The command line: ``SRC DST [--trust-source] [layout options]``."""
        parser = argparse.ArgumentParser(
            description=self.description,
            formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument('src', help=f'source checkpoint ({self.layout})')
        parser.add_argument('dst', help='msdet checkpoint to write')
        parser.add_argument('--trust-source', action='store_true',
                            help='unpickle arbitrary objects in SRC '
                            '(weights_only=False); only for trusted files')
        if self.add_arguments is not None:
            self.add_arguments(parser)
        return parser

    def main(self, argv=None):
        """Run the command line: read SRC, convert, write DST (atomically)
        and print the report. Returns the written meta; on a bad source,
        exits with the error (every bad key named) and writes nothing."""
        parser = self.parser()
        args = parser.parse_args(argv)
        try:
            source = SourceDict(load_source(args.src, args.trust_source))
            cfg, state_dict, src = self.convert(source, args)
        except (ConversionError, ValueError, FileNotFoundError) as err:
            raise SystemExit(
                f'{parser.prog}: cannot convert {args.src}:\n{err}')
        eq = self.equivalence(args, src)
        if eq.get('kind') not in EQUIVALENCE:
            raise ValueError(f"{parser.prog}: equivalence kind "
                             f"{eq.get('kind')!r}; allowed: {EQUIVALENCE}")
        meta = dict(
            converter=parser.prog, source=osp.abspath(args.src),
            source_layout=self.layout, equivalence=eq,
            dropped=list(src.dropped), filled=list(src.filled),
            notes=list(src.notes))
        meta['model' if self.scope else 'backbone'] = cfg
        if self.dataset_meta is not None:
            meta['dataset_meta'] = self.dataset_meta(src)
        save_backbone_checkpoint(args.dst, state_dict, meta)
        print(report(args.dst, state_dict, src, cfg, eq, self.usage))
        return meta


def report(dst, state_dict, src, cfg, eq, usage=None):
    """The summary printed after a conversion; ``usage(cfg, dst)``: its
    last line (default: the backbone config with ``init_cfg``)."""
    lines = [f'converted {len(src.used)} source tensors into '
             f'{len(state_dict)} tensors of {cfg["type"]}: {dst}']
    reasons = OrderedDict()
    for key, reason in src.dropped.items():
        reasons.setdefault(reason, []).append(key)
    for reason, keys in reasons.items():
        lines.append(f'dropped on purpose ({reason}): {", ".join(keys)}')
    if src.filled:
        lines.append(f'absent in the source, filled with 0: '
                     f'{len(src.filled)} BN counters (unused with a BN '
                     f'momentum; listed in meta["filled"]): '
                     f'{_names(src.filled, 3)}')
    lines += [f'note: {n}' for n in src.notes]
    lines.append(f"{eq['kind'].upper()}: {eq['statement']}")
    if usage is not None:
        lines.append(usage(cfg, dst))
        return '\n'.join(lines)
    args = ', '.join(f'{k}={v!r}' for k, v in cfg.items() if k != 'type')
    lines.append(f"use: backbone=dict(type='{cfg['type']}', {args}, "
                 f"init_cfg=dict(type='Pretrained', checkpoint='{dst}'))")
    return '\n'.join(lines)
