"""Robust reading of dataset image files (RGB photos, alpha mattes, trimaps) into numpy arrays.

Conversions (each applied only when needed; anything else is an ``ImageError`` naming the file):

- ``kind="rgb"`` -> uint8 ``[H, W, 3]``: grey is repeated on three channels; RGBA / LA drop the
  alpha channel (the stored colours are kept, not premultiplied, as the Adobe composition script
  and ``cv2.imread(...)[..., :3]`` do); palette images go through their palette; CMYK/YCbCr are
  converted by Pillow; 16-bit samples are scaled with ``round(v * 255 / 65535)``.
- ``kind="alpha"`` -> ``[H, W]``, uint8, or uint16 for 16-bit files (the precision is kept); a
  matte stored as RGB(A) or palette uses channel 0, provided the colour channels agree (an
  image whose channels differ by more than ``ALPHA_RGB_TOLERANCE`` is rejected as not a matte).
- ``kind="trimap"`` -> uint8 ``[H, W]``: like alpha, with 16-bit values scaled to 8 bits. Values
  are returned as stored (no snapping to 0/128/255).

EXIF orientation is not applied (pixels in stored order, as Pillow, OpenCV with
``IMREAD_UNCHANGED`` and ``tf.io.decode_image`` read them), so paired files keep matching.
"""

from __future__ import annotations

import io
import os
import pathlib

import cv2
import numpy as np
from PIL import Image

from jaxmatte import conventions as cv

KINDS = ("rgb", "alpha", "trimap")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_SIZE_BYTES = (16, 20)  # IHDR: width and height, big-endian uint32, after magic + len + type
_PNG_DEPTH_BYTE = 24  # IHDR: 8 magic + 4 length + 4 type + 4 width + 4 height, then bit depth
_UINT16_MAX = 65535


class ImageError(ValueError):
    """A file that cannot be read as the requested kind of image; the message names the file."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    scaled = np.round(arr.astype(np.float64) * (cv.UINT8_MAX / _UINT16_MAX))
    return scaled.astype(np.uint8)


def _decode(data: bytes, name: str) -> np.ndarray:
    """Decodes to uint8/uint16 ``[H, W]`` or ``[H, W, 3 or 4]`` (RGB/RGBA), palette expanded."""
    is_png16 = (
        data[:8] == _PNG_MAGIC and len(data) > _PNG_DEPTH_BYTE and data[_PNG_DEPTH_BYTE] == 16
    )
    if is_png16:  # Pillow reduces 16-bit colour PNGs to 8 bits by dropping the low byte.
        w, h = (int.from_bytes(data[i : i + 4], "big") for i in _PNG_SIZE_BYTES)
        limit = 2 * Image.MAX_IMAGE_PIXELS  # Pillow's DecompressionBombError size, both decoders
        if w * h > limit:
            raise ImageError(name, f"declares {w}x{h} pixels, over the {limit} read at most")
        try:
            arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as e:
            raise ImageError(name, f"unreadable 16-bit PNG ({str(e).strip()})") from e
        if arr is None:
            raise ImageError(name, "unreadable 16-bit PNG")
        if arr.ndim == 3:
            code = cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB
            arr = cv2.cvtColor(arr, code)
        return arr
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # full decode: truncated or corrupt data fails here, not later
            mode = im.mode
            if mode in ("P", "PA"):
                im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
            elif mode == "1":
                im = im.convert("L")
            elif mode == "LA":
                im = im.getchannel("L")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            elif mode not in ("L", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I"):
                raise ImageError(name, f"unsupported image mode {mode!r}")
            arr = np.array(im)
    except ImageError:
        raise
    except Image.UnidentifiedImageError as e:
        what = "an empty file" if not data else "not an image, or its header is cut off"
        raise ImageError(name, f"unreadable image: {what}") from e
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, ...)
        raise ImageError(name, f"unreadable image ({type(e).__name__}: {e})") from e
    if arr.dtype != np.uint8:  # Pillow's "I" / "I;16*" grey modes
        if arr.min() < 0 or arr.max() > _UINT16_MAX:
            raise ImageError(name, "integer samples outside 0..65535")
        arr = arr.astype(np.uint16)
    return arr


def _single_channel(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 2:
        return arr
    colour = arr[..., :3].astype(np.int32)
    spread = int((colour.max(axis=-1) - colour.min(axis=-1)).max())
    limit = cv.ALPHA_RGB_TOLERANCE * (1 if arr.dtype == np.uint8 else 257)
    if spread > limit:
        raise ImageError(
            name,
            f"a matte stored in colour must have equal channels (they differ by up to "
            f"{spread}); is this a photo in the matte folder?",
        )
    return np.ascontiguousarray(arr[..., 0])


def decode_image(data: bytes, kind: str = "rgb", name: str = "<bytes>") -> np.ndarray:
    """Decodes encoded image bytes as ``kind``; see the module docstring for the conversions.

    Args:
      data: PNG/JPEG/BMP/TIFF/WebP bytes.
      kind: "rgb" -> uint8 [H, W, 3]; "alpha" -> uint8 or uint16 [H, W]; "trimap" -> uint8 [H, W].
      name: what error messages call the data (usually its path).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    arr = _decode(data, name)
    if arr.ndim not in (2, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(name, f"empty or malformed image of shape {arr.shape}")
    if kind == "rgb":
        arr = _to_uint8(arr)
        if arr.ndim == 2:
            return np.repeat(arr[..., None], 3, axis=-1)
        return np.ascontiguousarray(arr[..., :3])
    arr = _single_channel(arr, name)
    return _to_uint8(arr) if kind == "trimap" else arr


def read_image(path: str | os.PathLike, kind: str = "rgb") -> np.ndarray:
    """Reads an image file as ``kind`` ("rgb", "alpha" or "trimap"); errors name the file.

    Args:
      path: the file.
      kind: "rgb" -> uint8 [H, W, 3]; "alpha" -> uint8 or uint16 [H, W]; "trimap" -> uint8 [H, W].
    """
    return read_image_and_bytes(path, kind)[0]


def read_image_and_bytes(
    path: str | os.PathLike, kind: str = "rgb"
) -> tuple[np.ndarray, bytes | None]:
    """Like ``read_image``, also returning the file's bytes when a record may store them as is.

    The bytes are returned only for PNG/JPEG files that need no conversion for ``kind`` (8-bit RGB
    for "rgb"; 8- or 16-bit grey for "alpha"; 8-bit grey for "trimap"), so that TensorFlow's
    decoder reproduces the array; otherwise ``None`` and the caller re-encodes the array.
    """
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImageError(path, f"cannot read file ({e.strerror or e})") from e
    arr = decode_image(data, kind, str(path))
    is_png = data[:8] == _PNG_MAGIC
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    raw_shape_ok = _stored_as_is(data, kind, arr, is_png)
    return arr, (data if (is_png or is_jpeg) and raw_shape_ok else None)


def _stored_as_is(data: bytes, kind: str, arr: np.ndarray, is_png: bool) -> bool:
    """Whether decoding ``data`` without conversion gives ``arr`` (channels, depth, no palette)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            mode = im.mode
    except Exception:  # noqa: BLE001 - decode already succeeded; be conservative
        return False
    is16 = is_png and data[_PNG_DEPTH_BYTE] == 16
    if kind == "rgb":
        return mode == "RGB" and not is16
    if kind == "alpha":
        return mode in ("L", "I;16", "I;16B", "I;16L", "I") and arr.ndim == 2
    return mode == "L" and not is16


def files_by_stem(
    folder: str | os.PathLike,
) -> tuple[dict[str, list[pathlib.Path]], list[pathlib.Path]]:
    """The one image-file lister (predict, metrics, layouts): ``({stem: [paths]}, others)``.

    Image files (``conventions.IMAGE_SUFFIXES``, any case) grouped by stem in sorted order; a
    stem with several files is ambiguous and each caller decides (refuse or skip). ``others``
    are the non-image files; hidden files and folders are ignored.
    """
    groups: dict[str, list[pathlib.Path]] = {}
    others: list[pathlib.Path] = []
    for p in sorted(pathlib.Path(folder).iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() in cv.IMAGE_SUFFIXES:
            groups.setdefault(p.stem, []).append(p)
        else:
            others.append(p)
    return groups, others
