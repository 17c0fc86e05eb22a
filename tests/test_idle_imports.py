"""An idle panel loads only what it uses: PyAV waits for the first shared screen,
``cryptography`` for the first start (making the TLS identity), python-zeroconf for a
kiosk that advertises itself (``mdns = true``), PyNaCl (libsodium) for the first usage
record signed or the first pairing, and sqlite-utils for nothing (the usage log uses
``sqlite3`` itself). Each takes megabytes of a small panel's
memory (``bench/window.py --rss-only`` measures the whole process).

The check starts and stops a real kiosk (``KioskApp``, mdns off, its settings read as
``classcast-kiosk`` reads them) in a fresh interpreter, on a state folder a first start
made, and imports the modules its window registers (shared screen, video, web pages).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.tls import ensure_identity

REPO = Path(__file__).resolve().parent.parent

_STARTED_KIOSK = r"""
import asyncio, json, sys
from pathlib import Path
from kiosk.addresses import default_addresses
from kiosk.app import KioskApp
from kiosk.config import load_config
from kiosk.headless import HeadlessDisplay
state = Path(sys.argv[1])  # as classcast-kiosk --config FILE --state-dir DIR --headless reads it
config = load_config(state.parent / "kiosk.toml", state_dir=state).with_overrides(
    state_dir=state, mode="headless")

async def start_and_stop() -> None:
    app = KioskApp(config, display=HeadlessDisplay())
    await app.start()
    await app.stop()

asyncio.run(start_and_stop())
default_addresses(None)  # the panel's address when the kiosk listens on every interface
from kiosk.screen_scene import ScreenLoader, ScreenStream
from kiosk.video_scene import load_video
from kiosk.web import WebLoader
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def _start_a_kiosk(state: Path) -> set[str]:
    """Start and stop a kiosk on ``state`` in a fresh interpreter: the top-level modules
    it had loaded."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYGLET_HEADLESS="true")
    done = subprocess.run(
        [sys.executable, "-c", _STARTED_KIOSK, str(state)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.slow
def test_a_started_kiosk_loads_only_what_it_uses(tmp_path: Path) -> None:
    (tmp_path / "kiosk.toml").write_text(
        'room = "r"\nschool = "s"\nhost = "127.0.0.1"\nport = 0\nmdns = false\n',
        encoding="utf-8",
    )
    first = _start_a_kiosk(tmp_path / "state")  # the first start makes the TLS identity and keys
    loaded = _start_a_kiosk(tmp_path / "state")
    assert {"kiosk", "pyglet", "websockets"} <= loaded  # it did build a kiosk
    assert "cryptography" in first
    assert "av" not in loaded  # PyAV: the first shared screen's picture
    assert "cryptography" not in loaded  # the first start only
    assert "zeroconf" not in loaded  # advertising (mdns = true) only
    assert "sqlite_utils" not in loaded  # the usage log is plain sqlite3
    assert "nacl" not in loaded  # the first usage record signed, or the first pairing
    assert "platformdirs" not in loaded  # a state folder given (or systemd's StateDirectory)


def test_the_tls_fingerprint_is_the_same_read_either_way(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from protocol.pairing import cert_fingerprint

    made = ensure_identity(tmp_path, "k-1")
    again = ensure_identity(tmp_path, "k-1")
    cert = x509.load_pem_x509_certificate(made.cert_path.read_bytes())
    assert made.fingerprint == again.fingerprint
    assert again.fingerprint == cert_fingerprint(cert.public_bytes(serialization.Encoding.DER))
