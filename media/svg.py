"""SVG pictures become PNG on the controller, so that a panel never parses SVG.

:func:`render_svg` turns an SVG file into a PNG fitted to ``SVG_RENDER_BOX`` on white,
kept in a render cache by the SVG's content: casting the same SVG again renders nothing
and sends nothing (the PNG, byte for byte the same, is already on the panel). The cache
is kept under ``MAX_RENDER_CACHE_BYTES``: the least recently used PNGs go first.

An SVG is untrusted input (a teacher downloads it), so before the renderer sees it:

- its size is checked from ``stat`` (``MAX_SVG_BYTES``);
- it is parsed by the standard library's expat, which never loads an external entity
  or DTD (an SVG that uses an external entity is refused as damaged, its target never
  read) and stops an entity expansion bomb (expat's amplification limit);
- every reference that leads out of the file is removed: an ``href`` that is not a
  fragment (``#id``) or an embedded raster picture (``data:image/png`` and the like).
  The renderer would otherwise read a local file named by an absolute path, or an
  SVG embedded as a ``data:`` URI with such references of its own. Nothing is fetched
  over the network: the renderer has no network code.

The renderer is resvg (through ``resvg-py``): written in Rust, memory-safe, the most
complete of the SVG renderers, and a self-contained wheel for Linux, Windows and macOS
(no system library such as cairo to install on a teacher's computer).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Final

import platformdirs

from media.lru import trim_to_size
from protocol.errors import CorruptContentError, FileTooLargeError, LessonError

SVG_RENDER_BOX: Final = (3840, 2160)
"""Pixels an SVG is rendered into, aspect kept: a 4K panel shows it pixel for pixel, a
smaller screen scales it down (8.3 megapixels, well under ``MAX_PICTURE_PIXELS``)."""

SVG_BACKGROUND: Final = "white"
"""What shows through an SVG's transparent parts: drawings are made for a white page (on
the panel's black, black lines would vanish)."""

MAX_SVG_BYTES: Final = 32 * 1024 * 1024
"""Largest SVG file (32 MiB), refused from its size before it is parsed: a detailed map
or diagram is a few MiB; a parsed SVG takes several times its size in memory."""

MAX_RENDER_CACHE_BYTES: Final = 512 * 1024 * 1024
"""Size the render cache is kept under (512 MiB): a rendered SVG is a PNG of up to
``SVG_RENDER_BOX``, usually well under 1 MiB; past the limit the least recently used
PNGs are removed (one used again is rendered again)."""

RENDER_VERSION: Final = "1"
"""Part of the cache key: change it when the rendering changes (the sanitiser, the box),
so that an old PNG is not reused."""

_SAFE_HREF: Final = re.compile(r"\A\s*(?:#|data:image/(?:png|jpeg|jpg|gif|webp)[;,])", re.I)
"""References that stay inside the file: a fragment, or a raster picture embedded in it."""


def default_render_dir() -> Path:
    """Where rendered pictures are kept: ``$CLASSCAST_HOME/cache/render``, or the user's
    cache directory (platformdirs)."""
    home = os.environ.get("CLASSCAST_HOME")
    base = Path(home) / "cache" if home else Path(platformdirs.user_cache_dir("classcast"))
    return base / "render"


def render_svg(
    path: Path, cache_dir: Path | None = None, *, max_cache_bytes: int = MAX_RENDER_CACHE_BYTES
) -> Path:
    """Render the SVG file ``path`` to a PNG (cached); return the PNG's path.

    The caller shows the PNG as an image item; the SVG itself never leaves this computer.

    Args:
        path: an SVG file (``media.probe`` recognised it).
        cache_dir: where PNGs are kept (default :func:`default_render_dir`).
        max_cache_bytes: the cache is trimmed to this size after a PNG is added.

    Returns:
        The PNG, named by the SVG's content, the renderer and ``RENDER_VERSION``.

    Raises:
        FileTooLargeError: the file is over ``MAX_SVG_BYTES``.
        CorruptContentError: the file is not well-formed XML, uses an external entity,
            has no ``<svg>`` root, or the renderer refuses it.
        LessonError: the file cannot be read (``unreadable``), or the PNG cannot be
            written.
    """
    import resvg_py

    try:
        size = path.stat().st_size
        if size > MAX_SVG_BYTES:
            raise FileTooLargeError(
                f"{path}: {size} bytes is over the limit of {MAX_SVG_BYTES} bytes for an SVG",
                path=str(path),
                size_bytes=size,
                limit_bytes=MAX_SVG_BYTES,
                what="svg",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise LessonError(
            f"cannot read {path}: {exc.strerror or exc}", path=str(path), reason="unreadable"
        ) from None
    key = hashlib.sha256(
        b"\0".join(
            [
                data,
                resvg_py.__resvg_version__.encode(),
                RENDER_VERSION.encode(),
                repr(SVG_RENDER_BOX).encode(),
            ]
        )
    ).hexdigest()
    folder = cache_dir if cache_dir is not None else default_render_dir()
    target = folder / f"{key}.png"
    try:
        used = target.stat()  # recently used (access time): trimmed last
        os.utime(target, ns=(time.time_ns(), used.st_mtime_ns))
        return target
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise LessonError(
            f"cannot use the picture of {path} in {folder}: {exc.strerror or exc}",
            path=str(folder),
            reason="unreadable",
        ) from None
    svg = sanitized_svg(data, path)
    width, height = SVG_RENDER_BOX
    try:
        png = bytes(
            resvg_py.svg_to_bytes(
                svg_string=svg, width=width, height=height, background=SVG_BACKGROUND
            )
        )
    except Exception as exc:  # resvg raises ValueError, and others for odd input
        raise CorruptContentError(f"{path}: SVG does not render: {exc}", path=str(path)) from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as out:
            out.write(png)
        os.replace(out.name, target)
        trim_render_cache(folder, max_cache_bytes, keep=target)
    except OSError as exc:
        raise LessonError(
            f"cannot keep the picture of {path} in {folder}: {exc.strerror or exc}",
            path=str(folder),
            reason="unreadable",
        ) from None
    return target


def trim_render_cache(folder: Path, max_bytes: int, *, keep: Path | None = None) -> None:
    """Remove the least recently used PNGs of ``folder`` (by access time, which
    :func:`render_svg` sets on each use) until it holds at most ``max_bytes``;
    ``keep`` (the PNG just made) stays. A file removed meanwhile is passed over."""
    trim_to_size(folder.glob("*.png"), max_bytes, keep=keep, used_at=lambda st: st.st_atime)


def sanitized_svg(data: bytes, path: Path | str = "?") -> str:
    """``data`` as SVG text with every reference out of the file removed (see the module
    docstring); entities are expanded and the DOCTYPE dropped.

    Raises:
        CorruptContentError: not well-formed XML, an external or undefined entity, an
            entity expansion bomb, or a root that is not ``<svg>``.
    """
    try:
        root = ET.parse(io.BytesIO(data)).getroot()
    except ET.ParseError as exc:
        raise CorruptContentError(f"{path}: SVG is not valid XML: {exc}", path=str(path)) from None
    if root.tag.rsplit("}", 1)[-1] != "svg":
        raise CorruptContentError(f"{path}: the XML is not an SVG picture", path=str(path))
    for element in root.iter():
        for name in [n for n in element.attrib if n.rsplit("}", 1)[-1] == "href"]:
            if not _SAFE_HREF.match(element.attrib[name]):
                del element.attrib[name]
    return ET.tostring(root, encoding="unicode")
