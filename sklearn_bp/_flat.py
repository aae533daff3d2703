"""Parameter-shaped arrays packed into one flat buffer.

The network's parameters, their gradients and the optimizers' buffers are lists
of arrays, one per layer (``coefs_ + intercepts_``). Allocated as consecutive
views of one flat buffer, each list can also be handled as a single 1-D array:
an element-wise update, a finiteness check or a backup copy is then one numpy
call for the whole network instead of one per layer, which is most of their
cost for small networks. Lists that are not packed (user-assigned arrays, or
arrays restored by unpickling, which does not keep views) are handled array by
array: packing is an optimisation, never a requirement.
"""

import numpy as np


def packed_empty(shapes, dtype):
    """Uninitialised arrays of the given shapes, views of one flat buffer."""
    sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
    flat = np.empty(sum(sizes), dtype=dtype)
    views, start = [], 0
    for shape, size in zip(shapes, sizes, strict=True):
        views.append(flat[start : start + size].reshape(shape))
        start += size
    return views


def packed_zeros_like(arrays):
    """Zeros shaped like ``arrays``, packed (one flat buffer)."""
    views = packed_empty([a.shape for a in arrays], arrays[0].dtype)
    views[0].base.fill(0)
    return views


def packed_copy(arrays):
    """A packed copy of ``arrays``."""
    views = packed_empty([a.shape for a in arrays], arrays[0].dtype)
    for v, a in zip(views, arrays, strict=True):
        np.copyto(v, a)
    return views


def flat_base(arrays):
    """The 1-D buffer that ``arrays`` tile in order, or ``None``.

    ``arrays`` qualify when they are C-contiguous views of one 1-D contiguous
    buffer, laid out one after the other in list order and covering all of it:
    then element ``k`` of the buffer is the same parameter element in every
    list packed alike.
    """
    if not arrays:
        return None
    base = arrays[0].base
    # (an array loaded from a file may have a bytes object as its base)
    if (
        not isinstance(base, np.ndarray)
        or base.ndim != 1
        or not base.flags.c_contiguous
    ):
        return None
    address = base.__array_interface__["data"][0]
    for a in arrays:
        if a.base is not base or not a.flags.c_contiguous or a.dtype != base.dtype:
            return None
        if a.__array_interface__["data"][0] != address:
            return None
        address += a.nbytes
    if address != base.__array_interface__["data"][0] + base.nbytes:
        return None
    return base
