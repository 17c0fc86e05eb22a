"""A teacher's folder, as Windows and macOS leave it, cast through the real ``classcast``
command (CliRunner) to a real panel process that renders offscreen (EGL): the junk is
passed over silently, the broken file is named in one Russian warning, and the panel
shows each of the rest, the animated GIF animating and the deck's slide (made into a
page by the real LibreOffice) in its own colour, read back from its screenshots."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from controller.cli import cli
from tests.kiosks import ADMIN_SECRET, kiosk_process
from tests.office_docs import make_docx, make_pptx

pytestmark = [
    pytest.mark.display,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("soffice") is None, reason="needs LibreOffice"),
]

RED = (255, 0, 0)
GREEN = (0, 200, 0)
BLUE = (0, 0, 255)
YELLOW = (255, 255, 0)
MAGENTA = (255, 0, 255)
TEAL = (0, 128, 128)
GIF_FRAME_MS = 800
"""Each frame of the test's GIF: longer than a screenshot through the CLI takes, so that
polling sees every frame (with short frames it could sample the same one each time)."""
SCREENSHOT_WAIT_S = 10.0
"""How long the panel may take to show an item (a generous bound; the test polls)."""


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def teachers_folder(root: Path) -> Path:
    folder = root / "Урок"
    folder.mkdir()
    Image.new("RGB", (320, 180), RED).save(folder / "01-red.png")
    frames = [Image.new("RGB", (320, 180), c) for c in (BLUE, YELLOW)]
    frames[0].save(
        folder / "02-moving.gif",
        save_all=True,
        append_images=frames[1:],
        duration=GIF_FRAME_MS,
        loop=0,
    )
    Image.new("RGB", (320, 180), GREEN).save(folder / "03-scan.bmp")
    whole = io.BytesIO()
    Image.new("RGB", (320, 180), RED).save(whole, "PNG")
    (folder / "04-broken.png").write_bytes(whole.getvalue()[:60] + b"\0" * 60)
    (folder / "05-flag.svg").write_text(
        "<svg xmlns='http://www.w3.org/2000/svg' width='160' height='90'>"
        "<rect width='160' height='90' fill='#ff00ff'/></svg>"
    )
    make_pptx(folder / "06-Схема.pptx", [("Круговорот воды", "008080")])
    make_docx(folder / "07-Письмо.docx", ["Дорогие родители!", "Завтра экскурсия."])
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504)
    (folder / "desktop.ini").write_text("[.ShellClassInfo]\r\nIconResource=x\r\n")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 100)
    (folder / "~$deck.pptx").write_bytes(b"\x0bteacher" + b"\0" * 150)
    (folder / "__MACOSX").mkdir()
    (folder / "__MACOSX" / "._01-red.png").write_bytes(b"\0\5\26\7" + b"\0" * 80)
    return folder


def centre(tmp_path: Path) -> tuple[int, int, int]:
    out = tmp_path / "thumb.png"
    result = run("status", "Каб. 7", "--thumbnail", str(out))
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        rgb = image.convert("RGB")
        return rgb.getpixel((rgb.width // 2, rgb.height // 2))  # type: ignore[return-value]


def close(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return all(abs(x - y) <= 12 for x, y in zip(a, b, strict=True))


def wait_for(look: Callable[[], tuple[int, int, int]], colour: tuple[int, int, int]) -> None:
    """Poll the panel's screenshot until its centre is ``colour`` (a bound, not a pause)."""
    deadline = time.monotonic() + SCREENSHOT_WAIT_S
    seen = look()
    while not close(seen, colour):
        assert time.monotonic() < deadline, f"the panel shows {seen}, not {colour}"
        seen = look()


def test_a_teachers_folder_is_cast_without_its_junk_and_with_one_warning(tmp_path: Path) -> None:
    folder = teachers_folder(tmp_path)
    with kiosk_process(tmp_path / "state") as (_, address):
        assert run("panels", "add", address).exit_code == 0
        paired = run("pair", address, "--admin", stdin=ADMIN_SECRET + "\n")
        assert paired.exit_code == 0, paired.output
        try:
            centre(tmp_path)
        except AssertionError as exc:
            pytest.skip(f"this machine renders without a window: {exc}")

        cast = run("cast", str(folder), "--to", "Каб. 7")
        assert cast.exit_code == 0, cast.output
        warnings = [line for line in cast.stderr.splitlines() if line.strip()]
        assert warnings == [
            f"Не вошёл в урок: {folder / '04-broken.png'}: файл повреждён и не открывается. "
            "Сохраните или экспортируйте его заново и начните показ снова."
        ]
        assert cast.stdout.startswith("Урок «Урок»: элементов — 6,"), cast.stdout
        for junk in ("Thumbs", "desktop.ini", "DS_Store", "~$", "MACOSX"):
            assert junk not in cast.output

        look = lambda: centre(tmp_path)  # noqa: E731
        wait_for(look, RED)
        assert run("next").exit_code == 0
        wait_for(look, BLUE)
        wait_for(look, YELLOW)  # the GIF's second frame: it animates
        wait_for(look, BLUE)  # ...and loops
        assert run("next").exit_code == 0
        wait_for(look, GREEN)  # the BMP
        assert run("next").exit_code == 0
        wait_for(look, MAGENTA)  # the SVG, rendered on this computer
        assert run("next").exit_code == 0
        wait_for(look, TEAL)  # the deck's slide, by LibreOffice
        assert "Круговорот воды" in run("status", "Каб. 7").output  # the slide's title
        assert run("next").exit_code == 0
        status = run("status", "Каб. 7")
        assert "07-Письмо — с. 1" in status.output, status.output  # the document's page
        assert "6 из 6" in status.output or "6/6" in status.output, status.output
