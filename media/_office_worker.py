"""Converts office documents to PDF with one warm LibreOffice, for :mod:`media.office`.

Runs under the system Python, the one Debian's ``python3-uno`` gives the ``uno`` module
(the project's venv has no access to it), as
``python3 _office_worker.py SOFFICE PROFILE_URL PIPE_NAME``. It imports nothing from
the project. It starts LibreOffice headless with a private profile, listening only on a
UNO pipe (a Unix socket only this user may open, no TCP port), and speaks with its
parent over stdin and stdout, one JSON object a line:

- it writes ``{"ready": true}`` once LibreOffice answers, or ``{"error": "..."}`` and
  exits when it does not start;
- for each request ``{"in": "/abs/doc.pptx", "out": "/abs/doc.pdf"}`` it writes
  ``{"ok": true}`` or ``{"error": "...", "alive": BOOL}``; when LibreOffice is gone
  (``alive`` false, or found dead before a request) it exits, and the parent starts a
  new worker for the next document.

Documents are opened hidden, read-only, with macros never run and links never updated.
Closing stdin ends LibreOffice and the worker. The parent kills the whole process
group when a conversion overruns its time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import uno  # type: ignore[import-not-found]

START_TIMEOUT_S = 60.0
_NEVER_EXECUTE = 0  # com.sun.star.document.MacroExecMode.NEVER_EXECUTE
_NO_UPDATE = 0  # com.sun.star.document.UpdateDocMode.NO_UPDATE


def _prop(name: str, value: object) -> Any:
    from com.sun.star.beans import PropertyValue  # type: ignore[import-not-found]

    prop = PropertyValue()
    prop.Name = name
    prop.Value = value
    return prop


def _reply(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _connect(soffice: subprocess.Popen[bytes], pipe_name: str) -> Any:
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext(
        "com.sun.star.bridge.UnoUrlResolver", local
    )
    url = f"uno:pipe,name={pipe_name};urp;StarOffice.ComponentContext"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            ctx = resolver.resolve(url)
            return ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        except Exception:
            if soffice.poll() is not None:
                raise RuntimeError(f"LibreOffice exited with code {soffice.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError("LibreOffice did not answer") from None
            time.sleep(0.05)


def _convert(desktop: Any, src: str, dst: str) -> None:
    doc = desktop.loadComponentFromURL(
        uno.systemPathToFileUrl(src),
        "_blank",
        0,
        (
            _prop("Hidden", True),
            _prop("ReadOnly", True),
            _prop("MacroExecutionMode", _NEVER_EXECUTE),
            _prop("UpdateDocMode", _NO_UPDATE),
        ),
    )
    if doc is None:
        raise RuntimeError("LibreOffice could not open the document")
    try:
        if doc.supportsService("com.sun.star.presentation.PresentationDocument"):
            pdf_filter = "impress_pdf_Export"
        elif doc.supportsService("com.sun.star.text.TextDocument"):
            pdf_filter = "writer_pdf_Export"
        else:
            raise RuntimeError("not a presentation or a text document")
        doc.storeToURL(uno.systemPathToFileUrl(dst), (_prop("FilterName", pdf_filter),))
    finally:
        doc.close(True)


def _alive(desktop: Any) -> bool:
    """Whether LibreOffice still answers (a document may have crashed it)."""
    try:
        desktop.getComponents()
    except Exception:
        return False
    return True


def main() -> int:
    soffice_path, profile_url, pipe_name = sys.argv[1:4]
    os.umask(0o077)  # the UNO pipe's socket and the profile: for this user alone
    soffice = subprocess.Popen(
        [
            soffice_path,
            "--headless",
            "--invisible",
            "--nologo",
            "--norestore",
            "--nodefault",
            "--nolockcheck",
            f"-env:UserInstallation={profile_url}",
            f"--accept=pipe,name={pipe_name};urp;StarOffice.ComponentContext",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        desktop = _connect(soffice, pipe_name)
    except Exception as exc:
        soffice.kill()
        _reply({"error": str(exc)})
        return 1
    _reply({"ready": True})
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if soffice.poll() is not None or not _alive(desktop):
                return 1  # LibreOffice went away between documents: the parent restarts us
            try:
                _convert(desktop, request["in"], request["out"])
            except Exception as exc:
                alive = _alive(desktop)
                _reply({"error": str(exc) or type(exc).__name__, "alive": alive})
                if not alive:
                    return 1
            else:
                _reply({"ok": True})
    finally:
        try:
            desktop.terminate()
        except Exception:
            soffice.kill()
        try:
            soffice.wait(timeout=10)
        except subprocess.TimeoutExpired:
            soffice.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
