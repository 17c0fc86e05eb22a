"""Office conversion: a 10- and a 40-slide deck made into pages, cold and warm, and the re-cast.

Run: ``.venv/bin/python -m bench.convert [--quick] [--repeats R]``

Decks are .pptx files written like tests/office_docs.py does: each slide has a Russian
title, a coloured background and a text box of five lines, in the fonts LibreOffice
substitutes for Calibri (Carlito). Each deck of a run differs in its text, so no
conversion hits the cache unless it is meant to.

- cold: a new :class:`media.office.OfficeConverter` converts one deck: LibreOffice is
  started (its profile already made, as on a teacher's computer after the first use),
  the deck converted, the titles read. The very first start, which makes the profile,
  is shown apart.
- warm: the same converter converts another deck of the same size: LibreOffice is
  already running.
- baseline: ``soffice --headless --convert-to pdf`` of the deck, what a script would do
  (LibreOffice starts each time; the same made profile).
- re-cast: the 40-slide deck is cast with ``load_lesson(…, converter=…)`` to a kiosk in
  a child process, then loaded and cast again by a new converter on the same cache:
  LibreOffice conversions and media bytes sent by that second cast.

Figures are medians of ``--repeats`` runs (quick: one run, 10-slide deck only for the
timings). Aims: a 40-slide deck ≤ 2 s warm and ≤ 10 s cold; the re-cast converts
nothing and sends 0 media bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench._common import (
    BENCH_ADMIN_SECRET,
    LOOPBACK,
    ServerProcess,
    add_weak_option,
    figure,
    heading,
    result_line,
    weak_panel,
)
from controller.client import ControllerIdentity, KioskClient
from media.lesson import load_lesson
from media.office import OfficeConverter
from tests.office_docs import make_pptx

IDENTITY = ControllerIdentity("c-bench-convert", "Bench Teacher")
COLOURS = ("C62828", "2E7D32", "1565C0", "F9A825", "6A1B9A")
BODY = (
    "Фотосинтез — образование органических веществ из углекислого газа и воды\n"
    "на свету при участии пигментов (у растений — хлорофилла).\n"
    "Световая фаза идёт на мембранах тилакоидов, темновая — в строме.\n"
    "Итоговое уравнение: 6CO₂ + 6H₂O → C₆H₁₂O₆ + 6O₂.\n"
    "Вопрос: почему листья зелёные?"
)


def deck(folder: Path, slides: int, tag: str) -> Path:
    """A .pptx of ``slides`` slides whose text carries ``tag`` (a distinct sha256)."""
    path = folder / f"deck{slides}-{tag}.pptx"
    titles = [(f"Слайд {n + 1}: тема {tag}", COLOURS[n % len(COLOURS)]) for n in range(slides)]
    return make_pptx(path, titles, body=BODY)


def timed(conv: OfficeConverter, path: Path) -> float:
    t0 = time.perf_counter()
    conv.to_pdf(path, f"{path.stem}")
    return time.perf_counter() - t0


def plain_soffice(path: Path, out: Path, profile: Path) -> float:
    soffice = shutil.which("soffice")
    assert soffice is not None
    t0 = time.perf_counter()
    subprocess.run(
        [
            soffice,
            "--headless",
            f"-env:UserInstallation={profile.as_uri()}",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def conversions(root: Path, sizes: list[int], repeats: int) -> dict[str, float | int | str]:
    values: dict[str, float | int | str] = {}
    docs = root / "docs"
    docs.mkdir()
    first = OfficeConverter(root / "first")
    first_start_s = timed(first, deck(docs, sizes[0], "first"))
    first.close()
    heading("the very first start (LibreOffice makes its profile)")
    figure(f"{sizes[0]}-slide deck, cold, new profile", first_start_s, "s")
    profile = root / "first" / "profile"
    for slides in sizes:
        cold: list[float] = []
        warm: list[float] = []
        plain: list[float] = []
        for r in range(repeats):
            cache = root / f"c{slides}-{r}"
            shutil.copytree(profile, cache / "profile")  # a made profile, as after first use
            with OfficeConverter(cache) as conv:
                cold.append(timed(conv, deck(docs, slides, f"cold{r}")))
                warm.append(timed(conv, deck(docs, slides, f"warm{r}")))
                if conv.conversions != 2 or not conv.warm:
                    raise RuntimeError("the warm converter did not stay warm")
            out = root / f"plain{slides}-{r}"
            plain.append(plain_soffice(deck(docs, slides, f"plain{r}"), out, profile))
        c, w, p = (statistics.median(x) for x in (cold, warm, plain))
        heading(f"{slides}-slide deck (median of {repeats})")
        figure("baseline: soffice --convert-to pdf", p, "s")
        figure("cold: OfficeConverter, LibreOffice starts", c, "s", f"{c / p:.2f}x baseline")
        figure("warm: OfficeConverter, LibreOffice running", w, "s", f"{w / p:.2f}x baseline")
        figure("per slide, warm", w / slides * 1e3, "ms")
        values |= {f"cold{slides}_s": c, f"warm{slides}_s": w, f"soffice{slides}_s": p}
    return values


async def recast(root: Path, slides: int) -> dict[str, float | int | str]:
    path = deck(root / "docs", slides, "recast")
    with OfficeConverter(root / "recast") as conv:
        lesson = load_lesson(path, converter=conv)
        converted = conv.conversions
    with OfficeConverter(root / "recast") as again_conv:
        t0 = time.perf_counter()
        again = load_lesson(path, converter=again_conv)
        load_s = time.perf_counter() - t0
        reconverted = again_conv.conversions
    with ServerProcess("kiosk", "--count", "1", "--state-dir", str(root / "kiosk")) as server:
        client = await KioskClient.connect(f"{LOOPBACK}:{server.info['ports'][0]}", IDENTITY)
        await client.pair(BENCH_ADMIN_SECRET, role="admin")
        try:
            first = await client.cast(lesson)
            t0 = time.perf_counter()
            second = await client.cast(again)
            cast_s = time.perf_counter() - t0
        finally:
            await client.close()
    heading(f"re-cast of the {slides}-slide deck (a new converter on the same cache)")
    figure("conversions, first cast", converted, "")
    figure("conversions, re-cast", reconverted, "", "aim 0")
    figure("media bytes sent, first cast", first.bytes_sent, "B")
    figure("media bytes sent, re-cast", second.bytes_sent, "B", "aim 0")
    figure("re-cast: load (hash, cache hit)", load_s * 1e3, "ms")
    figure("re-cast: cast", cast_s * 1e3, "ms")
    return {
        "recast_conversions": reconverted,
        "recast_bytes": second.bytes_sent,
        "recast_load_ms": load_s * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.convert", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run of the 10-slide deck")
    parser.add_argument("--repeats", type=int, help="runs per deck size (default 3)")
    add_weak_option(parser)
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    sizes = [10] if args.quick else [10, 40]
    root = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    try:
        print(f"convert: {sizes} slides, {repeats} run(s) each, LibreOffice {_version()}")
        values = conversions(root, sizes, repeats)
        with weak_panel(args.weak):
            values |= asyncio.run(recast(root, 40))
        heading("summary")
        if 40 in sizes:
            figure("40 slides warm", float(values["warm40_s"]), "s", "aim <= 2 s")
            figure("40 slides cold", float(values["cold40_s"]), "s", "aim <= 10 s")
        result_line("convert", values)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _version() -> str:
    done = subprocess.run(["soffice", "--version"], capture_output=True, text=True)
    return done.stdout.split(" ")[1] if done.stdout else "?"


if __name__ == "__main__":
    main()
