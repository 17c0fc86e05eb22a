"""Text slides: the Markdown subset a panel shows, and the colours of its page.

One home for both faces of a text slide: the panel lays the blocks out with pyglet
(``kiosk/scenes.py``), the teacher's app draws a thumbnail of them with Pillow
(``controller/webapp/lessons.py``). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

Color = tuple[int, int, int, int]

SLIDE_BACKGROUND: Final[Color] = (250, 250, 245, 255)
SLIDE_TEXT: Final[Color] = (25, 25, 25, 255)
SLIDE_HEADING: Final[Color] = (13, 60, 130, 255)

BULLET: Final = "•\u00a0"
"""What a list item starts with on the page (the ``-`` marker is not shown)."""


@dataclass(frozen=True, slots=True)
class Block:
    """A block of a Markdown slide: ``kind`` heading (with ``level``), paragraph or item.

    ``spans`` are pieces of text with a bold flag.
    """

    kind: str
    spans: tuple[tuple[str, bool], ...]
    level: int = 0


_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_LIST_ITEM = re.compile(r"^\s*[-*+]\s+(.*)$")
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")


def _spans(text: str) -> tuple[tuple[str, bool], ...]:
    spans: list[tuple[str, bool]] = []
    pos = 0
    for m in _BOLD.finditer(text):
        if m.start() > pos:
            spans.append((text[pos : m.start()], False))
        spans.append((m.group(1) or m.group(2), True))
        pos = m.end()
    if pos < len(text):
        spans.append((text[pos:], False))
    return tuple(spans)


def parse_markdown(text: str) -> list[Block]:
    """Parse the Markdown subset of text slides: ``#`` headings, paragraphs, ``-`` lists,
    ``**bold**``. Anything else is kept as plain text.
    """
    blocks: list[Block] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(Block("paragraph", _spans(" ".join(paragraph))))
            paragraph.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif m := _HEADING.match(line):
            flush()
            blocks.append(Block("heading", _spans(m.group(2).strip()), level=len(m.group(1))))
        elif m := _LIST_ITEM.match(raw):
            flush()
            blocks.append(Block("item", _spans(m.group(1).strip())))
        else:
            paragraph.append(line)
    flush()
    return blocks
