"""Office documents (.pptx, .ppt, .odp, .docx, .doc, .odt, .rtf) made into PDF pages.

Conversion happens on the controller, never on a panel: :class:`OfficeConverter` turns a
document into a PDF with LibreOffice, and :func:`media.lesson.load_lesson` makes one item
per page of it, as for any PDF. Each result is kept in a cache directory by the source's
sha256, with the slides' titles, so casting the same document again converts nothing
and sends the same PDF (which the panel already has).

The converter keeps one LibreOffice warm: the first conversion starts
``_office_worker.py`` under the system Python (the one with Debian's ``python3-uno``);
it starts LibreOffice listening on a private UNO pipe and takes requests on its stdin,
so later documents cost only their conversion. Where that Python or its ``uno`` module
is missing, each document is converted by a plain ``soffice --headless --convert-to
pdf`` instead (slower: LibreOffice starts each time). Call :meth:`OfficeConverter.close`
(or use it as a context manager) to end LibreOffice.

:func:`office_kind` recognises a document by its content (an OOXML or ODF zip's parts,
RTF's ``{\\rtf``); the old binary formats (.doc, .ppt) share their container with other
files, such as ``Thumbs.db``, so they need their suffix too. :func:`slide_titles` reads
the slides' titles from a .pptx or .odp with the standard library.

Problems are :class:`~protocol.errors.LessonError` with ``path`` set to the document:

=================  ===========================================================
``no_office``      LibreOffice (``soffice``) is not installed
``office_failed``  LibreOffice could not convert the document, or a file named
                   as one (.pptx, .docx…) is not one (:mod:`media.lesson`)
``office_timeout`` the conversion took over ``CONVERT_TIMEOUT_S``
=================  ===========================================================
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from media.lru import trim_to_size
from protocol.errors import LessonError
from protocol.limits import MAX_STRING_CHARS

if TYPE_CHECKING:  # zipfile and the XML parser load when a zip is looked at
    import zipfile
    from xml.etree import ElementTree

OfficeKind = Literal["presentation", "text"]

OFFICE_SUFFIXES: Final = frozenset({".pptx", ".ppt", ".odp", ".docx", ".doc", ".odt", ".rtf"})
"""Suffixes of the documents converted to PDF (the content decides; see :func:`office_kind`)."""

CONVERT_TIMEOUT_S: Final = 120.0
"""Longest one document's conversion may take, LibreOffice's start included; then
LibreOffice is killed and the document refused (``office_timeout``)."""

MAX_CONVERTED_CACHE_BYTES: Final = 2 * 1024**3
"""Size the cache of converted PDFs is kept under; the least recently used go first."""

MAX_TITLE_XML_BYTES: Final = 16 * 1024 * 1024
"""Largest slide XML part read for a title; a larger one (a zip bomb) gives no titles."""

SYSTEM_PYTHON: Final = "/usr/bin/python3"
"""The Python that has LibreOffice's ``uno`` module (Debian's ``python3-uno``)."""

INSTALL_COMMAND: Final = "sudo apt install libreoffice-impress libreoffice-writer"
"""How to install what the converter needs, on Debian and Ubuntu."""

OFFICE_HEAD_BYTES: Final = 8
"""Bytes of a file's start :func:`office_kind` needs."""

_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OLE_SUFFIXES: Final[dict[str, OfficeKind]] = {".ppt": "presentation", ".doc": "text"}
_ODF_KINDS: Final[dict[bytes, OfficeKind]] = {
    b"application/vnd.oasis.opendocument.presentation": "presentation",
    b"application/vnd.oasis.opendocument.text": "text",
}
_WORKER: Final = Path(__file__).with_name("_office_worker.py")
_NS: Final = {
    "p": "http://schemas.openxmlformats.org/presentationml/2006/main",
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "rel": "http://schemas.openxmlformats.org/package/2006/relationships",
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
}
_SPACES: Final = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Converted:
    """A document's PDF in the cache, and its slides' titles (``None`` where a slide has
    none; empty when unknown). Use ``titles`` only when there is one per PDF page."""

    pdf: Path
    titles: tuple[str | None, ...]


# --------------------------------------------------------------------------- recognising


def office_kind(path: Path, head: bytes) -> OfficeKind | None:
    """Whether ``path`` (whose first bytes are ``head``) is an office document, and which.

    Returns:
        ``"presentation"`` or ``"text"``, or ``None`` for any other file (probe it as
        usual).
    """
    if head.startswith(b"{\\rtf"):
        return "text"
    if head.startswith(_OLE_MAGIC):
        return _OLE_SUFFIXES.get(path.suffix.lower())
    if not head.startswith(b"PK\x03\x04"):
        return None
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "ppt/presentation.xml" in names:
                return "presentation"
            if "word/document.xml" in names:
                return "text"
            if "mimetype" in names:
                with z.open("mimetype") as f:
                    return _ODF_KINDS.get(f.read(100).strip())
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError):
        return None
    return None


def slide_titles(path: Path) -> tuple[str | None, ...]:
    """The titles of the shown slides of a .pptx or .odp, in order; empty when unknown.

    Reads the title placeholder of each slide (``p:ph type="title"``/``"ctrTitle"`` in
    OOXML, ``presentation:class="title"`` in ODF); a slide without one has ``None``.
    Never raises: a document whose XML does not read has no titles.
    """
    import zipfile
    from xml.etree import ElementTree

    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "ppt/presentation.xml" in names:
                return _pptx_titles(z)
            if "content.xml" in names:
                return _odp_titles(z)
    except (OSError, zipfile.BadZipFile, ElementTree.ParseError, ValueError, RuntimeError):
        return ()
    return ()


def _xml(z: zipfile.ZipFile, name: str) -> ElementTree.Element:
    if z.getinfo(name).file_size > MAX_TITLE_XML_BYTES:
        raise ValueError(f"{name} is too large")
    with z.open(name) as f:
        data = f.read(MAX_TITLE_XML_BYTES + 1)
    if len(data) > MAX_TITLE_XML_BYTES:
        raise ValueError(f"{name} is too large")
    from xml.etree import ElementTree

    return ElementTree.fromstring(data)


def _text(element: ElementTree.Element, paragraph: str, run: str) -> str | None:
    lines = ["".join(t.text or "" for t in p.iter(run)) for p in element.iter(paragraph)]
    text = _SPACES.sub(" ", " ".join(lines)).strip()
    return text[:MAX_STRING_CHARS] or None


def _pptx_titles(z: zipfile.ZipFile) -> tuple[str | None, ...]:
    rels = _xml(z, "ppt/_rels/presentation.xml.rels")
    targets = {r.get("Id"): r.get("Target", "") for r in rels.iter(f"{{{_NS['rel']}}}Relationship")}
    titles: list[str | None] = []
    for sld in _xml(z, "ppt/presentation.xml").iter(f"{{{_NS['p']}}}sldId"):
        target = targets.get(sld.get(f"{{{_NS['r']}}}id"), "").lstrip("/")
        name = target if target.startswith("ppt/") else f"ppt/{target}"
        slide = _xml(z, os.path.normpath(name))
        if slide.get("show") in ("0", "false"):
            continue  # hidden: not in the PDF
        title = None
        for sp in slide.iter(f"{{{_NS['p']}}}sp"):
            ph = sp.find("p:nvSpPr/p:nvPr/p:ph", _NS)
            if ph is not None and ph.get("type") in ("title", "ctrTitle"):
                title = _text(sp, f"{{{_NS['a']}}}p", f"{{{_NS['a']}}}t")
                break
        titles.append(title)
    return tuple(titles)


def _odp_titles(z: zipfile.ZipFile) -> tuple[str | None, ...]:
    content = _xml(z, "content.xml")
    titles: list[str | None] = []
    title_class = f"{{{_NS['presentation']}}}class"
    for page in content.iter(f"{{{_NS['draw']}}}page"):
        title = None
        for frame in page.iter(f"{{{_NS['draw']}}}frame"):
            if frame.get(title_class) == "title":
                text = _SPACES.sub(" ", " ".join(frame.itertext())).strip()
                title = text[:MAX_STRING_CHARS] or None
                break
        titles.append(title)
    return tuple(titles)


# --------------------------------------------------------------------------- cache


class ConvertedCache:
    """Converted PDFs by the source's sha256, in ``root``, kept under ``max_bytes``."""

    def __init__(self, root: Path, *, max_bytes: int = MAX_CONVERTED_CACHE_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def get(self, sha256: str) -> Converted | None:
        """The cached conversion of the source with ``sha256``, or ``None``."""
        pdf = self.root / f"{sha256}.pdf"
        meta = self.root / f"{sha256}.json"
        try:
            titles = json.loads(meta.read_text(encoding="utf-8"))["titles"]
            if not pdf.is_file() or not isinstance(titles, list):
                return None
            now = time.time()
            os.utime(pdf, (now, now))  # recently used: trimmed last
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return Converted(pdf, tuple(t if isinstance(t, str) else None for t in titles))

    def put(self, sha256: str, pdf_made: Path, titles: tuple[str | None, ...]) -> Converted:
        """Move ``pdf_made`` into the cache under ``sha256``; trim the cache to size."""
        self.root.mkdir(parents=True, exist_ok=True)
        pdf = self.root / f"{sha256}.pdf"
        meta = self.root / f"{sha256}.json"
        os.replace(pdf_made, pdf)
        tmp = meta.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"titles": list(titles)}, ensure_ascii=False), "utf-8")
        os.replace(tmp, meta)
        self.trim(keep=pdf)
        return Converted(pdf, titles)

    def trim(self, *, keep: Path | None = None) -> None:
        """Remove the least recently used PDFs until the cache holds at most ``max_bytes``."""

        def remove(pdf: Path) -> None:
            pdf.unlink(missing_ok=True)
            pdf.with_suffix(".json").unlink(missing_ok=True)

        trim_to_size(self.root.glob("*.pdf"), self.max_bytes, keep=keep, remove=remove)


# --------------------------------------------------------------------------- converter


class OfficeConverter:
    """Converts office documents to PDF with one warm LibreOffice; caches the results.

    Thread-safe (one conversion at a time). ``conversions`` counts the documents
    LibreOffice converted (cache hits are not counted). Call :meth:`close` when done.

    Args:
        cache_dir: where converted PDFs and LibreOffice's private profile are kept.
        soffice: the ``soffice`` program; by default found on ``PATH``.
        python: the Python with ``uno``; ``None`` converts with plain ``soffice`` only.
        timeout_s: the longest one conversion may take.
        on_convert: called with a document's path before LibreOffice converts it (not
            for a cache hit), so a face can say "converting".
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        soffice: str | None = None,
        python: str | None = SYSTEM_PYTHON,
        timeout_s: float = CONVERT_TIMEOUT_S,
        max_cache_bytes: int = MAX_CONVERTED_CACHE_BYTES,
        on_convert: Callable[[Path], None] | None = None,
    ) -> None:
        self.cache = ConvertedCache(cache_dir / "pdf", max_bytes=max_cache_bytes)
        self._dir = cache_dir
        self._soffice = soffice
        self._python = python
        self.timeout_s = timeout_s
        self.on_convert = on_convert
        self.conversions = 0
        self._lock = threading.Lock()
        self._worker: subprocess.Popen[bytes] | None = None
        self._pipe = ""
        self._warm_failed = python is None

    def __enter__(self) -> OfficeConverter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def warm(self) -> bool:
        """Whether a LibreOffice is running, ready for the next document."""
        return self._worker is not None and self._worker.poll() is None

    def to_pdf(self, path: Path, sha256: str) -> Converted:
        """The PDF of the document ``path`` whose content hashes to ``sha256``.

        Converts it unless the cache has it; then make its pages into items.

        Raises:
            LessonError: ``no_office``, ``office_failed`` or ``office_timeout`` (see the
                module's docstring), with ``path`` set.
        """
        cached = self.cache.get(sha256)
        if cached is not None:
            return cached
        with self._lock:
            cached = self.cache.get(sha256)
            if cached is not None:
                return cached
            soffice = self._soffice or shutil.which("soffice")
            if soffice is None:
                raise LessonError(
                    f"{path}: LibreOffice (soffice) is not installed; install it with "
                    f"`{INSTALL_COMMAND}`",
                    path=str(path),
                    reason="no_office",
                )
            if self.on_convert is not None:
                self.on_convert(path)
            self._dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self._dir, prefix="convert-") as tmp:
                out = Path(tmp) / "out.pdf"
                self._convert(soffice, path, out)
                self.conversions += 1
                if not out.is_file() or out.stat().st_size == 0:
                    raise _failed(path, "LibreOffice wrote no PDF")
                return self.cache.put(sha256, out, slide_titles(path))

    def close(self) -> None:
        """End the warm LibreOffice, if one runs. The converter may be used again."""
        with self._lock:
            self._stop_worker(graceful=True)

    # ----------------------------------------------------------------- internals

    def _convert(self, soffice: str, src: Path, out: Path) -> None:
        deadline = time.monotonic() + self.timeout_s
        for attempt in (1, 2):
            if not self._warm_failed and self._worker is None:
                try:
                    self._start_worker(soffice, deadline)
                except TimeoutError:
                    raise _timed_out(src, self.timeout_s) from None
            worker = self._worker
            if worker is None:
                self._convert_once(soffice, src, out, deadline)
                return
            assert worker.stdin is not None
            request = {"in": str(src.resolve()), "out": str(out.resolve())}
            try:
                worker.stdin.write((json.dumps(request) + "\n").encode())
                worker.stdin.flush()
                reply = self._reply(worker, deadline)
            except TimeoutError:
                self._stop_worker(graceful=False)
                raise _timed_out(src, self.timeout_s) from None
            except OSError as exc:
                self._stop_worker(graceful=False)
                if attempt == 1:
                    continue  # LibreOffice went away since the last document: start it again
                raise _failed(src, f"LibreOffice stopped: {exc}") from None
            if reply.get("alive") is False:
                self._stop_worker(graceful=False)  # this document took it down: a new one next
            if "error" in reply:
                raise _failed(src, str(reply["error"]))
            return

    def _start_worker(self, soffice: str, deadline: float) -> None:
        assert self._python is not None
        profile = self._dir / "profile"
        pipe = f"classcast-{os.getpid()}-{secrets.token_hex(8)}"
        try:
            worker = subprocess.Popen(
                [self._python, str(_WORKER), soffice, profile.resolve().as_uri(), pipe],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # one group: LibreOffice dies with it
            )
        except OSError:
            self._warm_failed = True
            return
        try:
            reply = self._reply(worker, deadline)
        except TimeoutError:
            _kill_group(worker)  # LibreOffice hangs: it would hang for soffice alone too
            raise
        except OSError:
            reply = {"error": "no answer"}
        if reply.get("ready") is not True:
            _kill_group(worker)
            self._warm_failed = True  # no uno, say: convert with plain soffice
            return
        self._worker = worker
        self._pipe = pipe

    def _reply(self, worker: subprocess.Popen[bytes], deadline: float) -> dict[str, object]:
        assert worker.stdout is not None
        fd = worker.stdout.fileno()
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                raise OSError("the converter exited")
            data += chunk
        try:
            reply = json.loads(data)
        except ValueError:
            raise OSError("the converter answered nonsense") from None
        return reply if isinstance(reply, dict) else {"error": "bad answer"}

    def _stop_worker(self, *, graceful: bool) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        if graceful and worker.stdin is not None:
            try:
                worker.stdin.close()
                worker.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _kill_group(worker)
        # A killed LibreOffice leaves its pipe's socket behind (OSL puts it in /tmp).
        Path(f"/tmp/OSL_PIPE_{os.getuid()}_{self._pipe}").unlink(missing_ok=True)

    def _convert_once(self, soffice: str, src: Path, out: Path, deadline: float) -> None:
        profile = self._dir / "profile-once"
        try:
            done = subprocess.run(
                [
                    soffice,
                    "--headless",
                    "--norestore",
                    "--nolockcheck",
                    f"-env:UserInstallation={profile.resolve().as_uri()}",
                    "--convert-to",
                    "pdf",
                    "--outdir",
                    str(out.parent),
                    str(src.resolve()),
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=max(0.1, deadline - time.monotonic()),
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise _timed_out(src, self.timeout_s) from None
        except OSError as exc:
            raise _failed(src, str(exc)) from None
        made = out.parent / f"{src.stem}.pdf"
        if done.returncode != 0 or not made.is_file():
            raise _failed(src, done.stderr.decode(errors="replace").strip() or "no PDF")
        os.replace(made, out)


def _kill_group(worker: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(worker.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=5)
    for pipe in (worker.stdin, worker.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _failed(path: Path, why: str) -> LessonError:
    return LessonError(
        f"{path}: LibreOffice could not convert it to PDF: {why}",
        path=str(path),
        reason="office_failed",
    )


def _timed_out(path: Path, timeout_s: float) -> LessonError:
    return LessonError(
        f"{path}: converting to PDF took over {timeout_s:g} s",
        path=str(path),
        reason="office_timeout",
        values={"limit_s": round(timeout_s)},
    )
