"""Argument checks with one message shape, raised when a module is built:

    "<Owner>: <arg>=<value>; allowed: <what>."

``owner`` is the class (or function) whose argument is checked, ``value`` the
argument as given (``repr``), ``what`` the allowed values in words. Every
check returns the value it accepted, so it reads as an assignment::

    num_stages = check_int(name, 'num_stages', num_stages, 1, 4)
    strides = check_ints(name, 'strides', strides, count=num_stages, low=1)
"""
import numbers
from collections.abc import Sequence
from typing import Iterable, Optional


def fail(owner: str, arg: str, value, allowed: str, exc=ValueError):
    """Raise ``exc`` with the message shape above."""
    raise exc(f'{owner}: {arg}={value!r}; allowed: {allowed}.')


def is_int(value) -> bool:
    """An integer that is not a bool (``numpy`` integers count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _bounds(low, high):
    if low is not None and high is not None:
        return f' in {low}..{high}'
    if low is not None:
        return f' >= {low}'
    return '' if high is None else f' <= {high}'


def _in_range(value, low, high):
    return is_int(value) and (low is None or value >= low) and (
        high is None or value <= high)


def check_int(owner: str, arg: str, value, low: Optional[int] = None,
              high: Optional[int] = None, allowed: Optional[str] = None) -> int:
    """``value`` is an int (not a bool) in ``low..high`` (each bound optional,
    inclusive). ``allowed`` replaces the generated description."""
    if not _in_range(value, low, high):
        fail(owner, arg, value, allowed or f'an int{_bounds(low, high)}')
    return int(value)


def check_ints(owner: str, arg: str, values, count: Optional[int] = None,
               low: Optional[int] = None, high: Optional[int] = None,
               allowed: Optional[str] = None) -> tuple:
    """``values`` is a non-empty sequence of ints in ``low..high``, exactly
    ``count`` of them if given; returned as a tuple of ints."""
    if not (isinstance(values, Sequence) and not isinstance(values, str)
            and len(values) > 0 and count in (None, len(values))
            and all(_in_range(v, low, high) for v in values)):
        number = 'a non-empty sequence of' if count is None else str(count)
        fail(owner, arg, values,
             allowed or f'{number} ints{_bounds(low, high)}')
    return tuple(int(v) for v in values)


def check_choice(owner: str, arg: str, value, choices: Iterable):
    """``value`` is one of ``choices`` (listed sorted where they sort)."""
    choices = list(choices)
    if value not in choices:
        try:
            choices = sorted(choices)
        except TypeError:
            pass
        fail(owner, arg, value, str(choices))
    return value
