#!/usr/bin/env python3
"""Regenerate the bundled sample lesson ``media/sample_lesson/`` («Фотосинтез»).

Run from the repository root::

    .venv/bin/python scripts/make_sample_lesson.py

Writes two PNG slides (mostly green ``#2e7d32`` and mostly blue ``#1565c0``, so a pixel
test can tell them apart), a two-page PDF, a Markdown text slide, a 2-second H.264
video (needs ``ffmpeg`` with libx264), an HTML page and ``lesson.toml``. The output is
deterministic for a given Pillow, ffmpeg and DejaVu font.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "media" / "sample_lesson"
FONT_PATHS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"),
)
SIZE = (1280, 720)
GREEN = "#2e7d32"
BLUE = "#1565c0"
FIXED_DATE = time.gmtime(1_756_713_600)  # 2025-09-01 08:00 UTC

LESSON_TOML = """\
title = "Фотосинтез"
subject = "Биология"
source = "https://lib.myschool.edu.ru/content/biology/photosynthesis"

[[items]]
file = "01-list.png"
title = "Лист — фабрика питания"
duration = 5

[[items]]
file = "02-hloroplast.png"
title = "Хлоропласт"
duration = 5

[[items]]
file = "03-shema.pdf"
title = "Схема фотосинтеза"
duration = 8

[[items]]
file = "04-uravnenie.md"
title = "Уравнение фотосинтеза"
duration = 10

[[items]]
file = "05-opyt.mp4"
title = "Опыт: пузырьки кислорода"

[[items]]
file = "06-proverka.html"
title = "Проверь себя"
source = "https://lib.myschool.edu.ru/content/biology/photosynthesis/quiz"
"""

MARKDOWN = """\
# Уравнение фотосинтеза

**6 CO₂ + 6 H₂O → C₆H₁₂O₆ + 6 O₂**

- Углекислый газ поступает через устьица листа.
- Вода поднимается от корней по сосудам стебля.
- Энергию даёт солнечный свет, её улавливает хлорофилл.
- Кислород выделяется в атмосферу — им мы дышим.
"""

HTML = """\
<!doctype html>
<html lang="ru">
<head>
<meta charset="utf-8">
<title>Проверь себя: фотосинтез</title>
<style>
  body { margin: 0; font: 32px/1.4 sans-serif; background: #fffde7; color: #1b1b1b; }
  main { max-width: 900px; margin: 60px auto; }
  h1 { color: #2e7d32; }
  li { margin: 12px 0; }
</style>
</head>
<body>
<main>
  <h1>Проверь себя</h1>
  <ol>
    <li>Где в клетке идёт фотосинтез?</li>
    <li>Какой газ растение поглощает, а какой выделяет?</li>
    <li>Зачем растению свет?</li>
  </ol>
  <p>Ответы обсудим вместе с учителем.</p>
</main>
</body>
</html>
"""


def font(size: int) -> ImageFont.FreeTypeFont:
    """Return the DejaVu Sans Bold font at ``size`` points (it has Cyrillic)."""
    for path in FONT_PATHS:
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    sys.exit("DejaVu Sans Bold is needed (apt install fonts-dejavu-core)")


def slide(background: str, label: str, shape: str, accent: str) -> Image.Image:
    """Draw a 1280x720 slide: solid background, one big shape and a label."""
    img = Image.new("RGB", SIZE, background)
    draw = ImageDraw.Draw(img)
    if shape == "leaf":
        draw.ellipse((440, 160, 840, 480), fill=accent)
        draw.line((460, 460, 820, 180), fill=background, width=10)
    else:
        draw.rounded_rectangle((420, 180, 860, 460), radius=120, fill=accent)
        for x in (520, 620, 720):
            draw.rectangle((x, 250, x + 40, 390), fill=background)
    draw.text((640, 590), label, font=font(64), fill="white", anchor="mm")
    return img


def pdf_page(title: str, lines: list[str]) -> Image.Image:
    """Draw one A4-landscape page (842x595 pt at 72 dpi) of the PDF as an image."""
    img = Image.new("RGB", (842, 595), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 842, 90), fill=GREEN)
    draw.text((40, 45), title, font=font(40), fill="white", anchor="lm")
    for i, line in enumerate(lines):
        draw.text((60, 160 + i * 70), line, font=font(32), fill="#1b1b1b")
    return img


def make_pdf(path: Path) -> None:
    """Write a two-page PDF of rendered pages with fixed metadata."""
    first = pdf_page(
        "Схема фотосинтеза",
        ["Свет + вода + углекислый газ", "↓ хлорофилл", "Глюкоза + кислород"],
    )
    second = pdf_page(
        "Где идёт фотосинтез",
        ["Лист → клетка → хлоропласт", "Днём — на свету", "Ночью растение дышит"],
    )
    first.save(
        path,
        "PDF",
        save_all=True,
        append_images=[second],
        resolution=72.0,
        quality=60,
        title="Фотосинтез",
        author="ClassCast",
        creator="ClassCast",
        producer="ClassCast",
        creationDate=FIXED_DATE,
        modDate=FIXED_DATE,
    )


def make_video(path: Path) -> None:
    """Encode a 2 s 320x240 H.264 test pattern with the index at the front."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("ffmpeg is needed to generate the sample video")
    subprocess.run(
        [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=2",
            "-c:v",
            "libx264",
            "-preset",
            "veryslow",
            "-crf",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-threads",
            "1",
            "-x264-params",
            "threads=1",
            "-map_metadata",
            "-1",
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
    )


def main() -> None:
    """Write every file of the sample lesson into ``media/sample_lesson/``."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "__init__.py").write_text("")
    slide(GREEN, "Лист — фабрика питания", "leaf", "#66bb6a").save(
        OUT / "01-list.png", optimize=True
    )
    slide(BLUE, "Хлоропласт", "chloroplast", "#64b5f6").save(
        OUT / "02-hloroplast.png", optimize=True
    )
    make_pdf(OUT / "03-shema.pdf")
    (OUT / "04-uravnenie.md").write_text(MARKDOWN, encoding="utf-8")
    make_video(OUT / "05-opyt.mp4")
    (OUT / "06-proverka.html").write_text(HTML, encoding="utf-8")
    (OUT / "lesson.toml").write_text(LESSON_TOML, encoding="utf-8")
    for path in sorted(OUT.iterdir()):
        if path.is_file():
            print(f"{path.stat().st_size:>8}  {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
