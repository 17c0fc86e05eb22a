"""The one door to python-vlc: the kiosk's video player and the video-frame grabber.

python-vlc is untyped and loads ``libvlc.so`` when imported, so ClassCast imports it
here and nowhere else, lazily (importing this module loads nothing), with a narrow mypy
override for ``vlc``. Callers get the module as :class:`typing.Any` and keep its objects
at their own edge: ``kiosk/video.py`` (the panel's :class:`~kiosk.video.VlcVideo`) and
``media/videoframe.py`` (a thumbnail's picture, in a child process).
"""

from __future__ import annotations

from typing import Any


def vlc_module() -> Any:
    """The ``vlc`` module (python-vlc), imported on first use (~35 ms).

    Raises:
        OSError: libVLC is not installed (Debian ``libvlc5``).
        ImportError: python-vlc is not installed.
    """
    import vlc  # the one import of python-vlc in ClassCast

    return vlc
