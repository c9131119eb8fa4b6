"""The reference's ``clip_score.pkl``, written as pickle opcodes directly (docs/performance.md).

The file maps ``"{class}={subfolder}={stem}"`` to ``[array([image–text], float32), array([image–image],
float32)]``: 617k entries hold 1.2M one-value arrays, and a generic pickler spends most of its time building and
reducing them. Here every entry is a key followed by one fixed-size record of opcodes (the two floats are its only
variable part), made for all entries at once with NumPy; loading runs ``numpy.array([value], "float32")`` for
each value, so ``pickle.load`` returns exactly what pickling the dict would have (tested against that).
"""

from __future__ import annotations

import pickle
from typing import Sequence

import numpy as np

BLOCK = 65536  # entries laid out at once (their index arrays take ~30 MB)


def _unicode_op(text: str) -> bytes:
    """BINUNICODE: a str of any length."""
    data = text.encode("utf-8", "surrogatepass")
    return pickle.BINUNICODE + len(data).to_bytes(4, "little") + data


def _score_record() -> tuple[np.dtype, dict[str, bytes]]:
    """The opcodes after each key: a list of two ``numpy.array([float], "float32")`` calls."""
    call = [pickle.BINGET + b"\x00", pickle.EMPTY_LIST]  # memo 0: numpy.array; memo 1: "float32"
    after = [pickle.APPEND, pickle.BINGET + b"\x01", pickle.TUPLE2, pickle.REDUCE]
    parts = {"open": pickle.EMPTY_LIST + pickle.MARK + b"".join(call) + pickle.BINFLOAT,
             "middle": b"".join(after) + b"".join(call) + pickle.BINFLOAT,
             "close": b"".join(after) + pickle.APPENDS}
    dtype = np.dtype([("open", f"S{len(parts['open'])}"), ("text", ">f8"), ("middle", f"S{len(parts['middle'])}"),
                      ("image", ">f8"), ("close", f"S{len(parts['close'])}")])
    return dtype, parts


def _entries(keys: Sequence[str], image_text: np.ndarray, image_image: np.ndarray) -> bytes:
    """The dict entries of ``keys`` laid out in one byte array: BINUNICODE header, the key's bytes, the record."""
    count = len(keys)
    dtype, parts = _score_record()
    records = np.zeros(count, dtype)
    records["open"], records["middle"], records["close"] = parts["open"], parts["middle"], parts["close"]
    records["text"] = np.asarray(image_text, np.float32)
    records["image"] = np.asarray(image_image, np.float32)
    key_bytes = "".join(keys).encode("utf-8", "surrogatepass")
    lengths = np.fromiter(map(len, keys), np.int64, count)
    if len(key_bytes) != int(lengths.sum()):  # some key is not ASCII: lengths in bytes, key by key
        lengths = np.fromiter((len(key.encode("utf-8", "surrogatepass")) for key in keys), np.int64, count)
    headers = np.zeros(count, [("op", "S1"), ("length", "<u4")])
    headers["op"], headers["length"] = pickle.BINUNICODE, lengths
    head_size, record_size = headers.dtype.itemsize, dtype.itemsize
    ends = np.cumsum(head_size + lengths + record_size)
    starts = ends - (head_size + lengths + record_size)
    body = np.empty(int(ends[-1]) if count else 0, np.uint8)
    body[(starts[:, None] + np.arange(head_size)).ravel()] = headers.view(np.uint8)
    key_starts = starts + head_size
    body[np.repeat(key_starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(len(key_bytes))] = \
        np.frombuffer(key_bytes, np.uint8)
    body[((key_starts + lengths)[:, None] + np.arange(record_size)).ravel()] = records.view(np.uint8)
    return body.tobytes()


def score_pickle_bytes(keys: Sequence[str], image_text: np.ndarray, image_image: np.ndarray) -> bytes:
    """``pickle.dumps({key: [np.array([t], "float32"), np.array([i], "float32")]})`` in effect, for every row.

    The similarities are stored as the float32 values they are (BINFLOAT holds the exact double of each). Entries
    are laid out a block at a time (bounded memory) and set by SETITEMS per block.
    """
    out = [pickle.PROTO + b"\x02", pickle.GLOBAL + b"numpy\narray\n", pickle.BINPUT + b"\x00", pickle.POP,
           _unicode_op("float32"), pickle.BINPUT + b"\x01", pickle.POP, pickle.EMPTY_DICT]
    for start in range(0, len(keys), BLOCK):
        block = slice(start, start + BLOCK)
        out += [pickle.MARK, _entries(keys[block], image_text[block], image_image[block]), pickle.SETITEMS]
    return b"".join(out + [pickle.STOP])
