"""An idle panel loads only what it uses: PyAV waits for the first shared screen, and
``cryptography`` for the first start (making the TLS identity). Each takes megabytes of
a small panel's memory (``bench/window.py --rss-only`` measures the whole process).

The check runs in a fresh interpreter that builds what a started kiosk builds from a
state folder made before: its TLS identity, its usage-signing key and usage log, and
the modules its window registers (shared screen, video, web pages).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.tls import ensure_identity, ensure_signing_key

REPO = Path(__file__).resolve().parent.parent

_STARTED_KIOSK = r"""
import json, sys
from pathlib import Path
state = Path(sys.argv[1])
import kiosk.app
from kiosk.tls import ensure_identity, ensure_signing_key
from kiosk.usage import UsageLog
identity = ensure_identity(state, "k-1")
identity.server_context()
log = UsageLog(state / "usage.sqlite", kiosk_id="k-1", room="r",
               signing_key=ensure_signing_key(state))
log.close_db()
from kiosk.screen_scene import ScreenLoader, ScreenStream
from kiosk.video_scene import load_video
from kiosk.web import WebLoader
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.slow
def test_a_started_kiosk_loads_neither_pyav_nor_cryptography(tmp_path: Path) -> None:
    ensure_identity(tmp_path, "k-1")  # the first start made them (with cryptography)
    ensure_signing_key(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO), PYGLET_HEADLESS="true")
    done = subprocess.run(
        [sys.executable, "-c", _STARTED_KIOSK, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert {"kiosk", "pyglet", "websockets"} <= loaded  # it did build a kiosk
    assert "av" not in loaded
    assert "cryptography" not in loaded


def test_the_tls_fingerprint_is_the_same_read_either_way(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from protocol.pairing import cert_fingerprint

    made = ensure_identity(tmp_path, "k-1")
    again = ensure_identity(tmp_path, "k-1")
    cert = x509.load_pem_x509_certificate(made.cert_path.read_bytes())
    assert made.fingerprint == again.fingerprint
    assert again.fingerprint == cert_fingerprint(cert.public_bytes(serialization.Encoding.DER))
