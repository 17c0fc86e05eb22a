"""Lesson content for ClassCast: loading, probing, storing and transferring blobs.

- :mod:`media.lesson` — the lesson model and ``load_lesson`` (folder, ``lesson.toml``, files).
- :mod:`media.probe` — what a file is, decided by its content.
- :mod:`media.svg` — SVG drawings rendered to PNG on the controller (resvg), links removed.
- :mod:`media.store` — the kiosk's content-addressed blob store (I/O).
- :mod:`media.chunks` — transfer planning and the chunk assembler (pure, no I/O).

This package re-exports nothing, so importing the pure :mod:`media.chunks` loads neither
Pillow nor pypdfium2.
"""
