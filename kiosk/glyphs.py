"""Text glyphs made at the speed of C, not one byte at a time in Python.

pyglet's FreeType renderer turns each glyph's coverage bitmap into BGRA pixels with a
Python loop over every byte (``FreeTypeGlyphRenderer._expand_to_rgba``): 5.6 ms for a
90 x 120 glyph on this machine, about 120 times what the same work costs done with slice
assignments. A panel makes its glyphs on the main thread (or the scene loader) the first
time a text shows at a size: the idle screen's clock, room and pairing code, every
heading of a text slide. Until then the render loop holds the interpreter, and the
network loop waits for it at each step: a panel just started, pinned to one core, took
5 s to answer a pairing.

:class:`PanelGlyphRenderer` makes the same pixels (white, the coverage as alpha) in one
pass over whole rows; :func:`install` makes pyglet's FreeType fonts use it (its
documented hook, ``Font.glyph_renderer_class``). Any other conversion goes to pyglet's
own code.
"""

from __future__ import annotations

from typing import Final

from pyglet.font.freetype import FreeTypeFont, FreeTypeGlyphRenderer

__all__ = ["PanelGlyphRenderer", "install"]

_OPAQUE_WHITE: Final = b"\xff"


class PanelGlyphRenderer(FreeTypeGlyphRenderer):
    """pyglet's FreeType glyph renderer, expanding coverage to BGRA with slices."""

    def _expand_to_rgba(self, data: bytes, src_format: str, dst_format: str) -> bytes:
        if src_format != "R" or dst_format != "BGRA":
            return FreeTypeGlyphRenderer._expand_to_rgba(self, data, src_format, dst_format)
        alpha = bytes(data)
        pixels = bytearray(_OPAQUE_WHITE * (4 * len(alpha)))
        pixels[3::4] = alpha  # B, G, R stay 255; the coverage is the alpha
        return bytes(pixels)


def install() -> None:
    """Make pyglet's FreeType fonts render their glyphs with :class:`PanelGlyphRenderer`
    (fonts loaded before keep the glyphs they made; new glyphs use it)."""
    FreeTypeFont.glyph_renderer_class = PanelGlyphRenderer
