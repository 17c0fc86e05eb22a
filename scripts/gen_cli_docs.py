"""Regenerate docs/cli.md from the ``--help`` of every ``classcast`` command.

Run ``python -m scripts.gen_cli_docs`` after changing a command; a test fails while the
file is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.testing import CliRunner

from controller.cli import cli
from kiosk.cli import main as kiosk_main

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"

HEADER = """\
# Command line

Generated from `--help` by `python -m scripts.gen_cli_docs`; do not edit by hand.

Output is Russian by default; `--lang en` (or `CLASSCAST_LANG=en`) switches to English.
PANEL is a room name (case-insensitive), a kiosk id or `HOST[:PORT]` (default port
47810). Commands without `--to`/`--all` act on the panels of the last `cast`. Item
numbers on the command line start at 1. Exit status: 0 success, 1 failure (on any
panel), 2 usage error.

## `--json` output

`classcast status --json` prints a list, one object per panel:

```json
[{"address": "127.0.0.1:47810", "online": true, "error": null,
  "status": {"kiosk_id": "k-…", "room": "Каб. 12", "school": "…", "state": "playing",
             "blanked": false, "lesson_id": "…", "lesson_title": "…", "index": 0,
             "count": 7, "item_kind": "image", "item_title": "…", "position_ms": 1200,
             "presenter": "…", "version": "0.1.0"}}]
```

`state` is one of `idle`, `loading`, `playing`, `paused`; `index` is 0-based there, as
on the wire. A panel that cannot be reached has `"online": false`, `"status": null` and
the reason in `"error"`; the exit status is then 1.

`classcast panels --json` prints one object per panel found by mDNS or saved:

```json
[{"room": "Каб. 12", "school": "…", "state": "idle", "address": "10.0.0.5:47810",
  "kiosk_id": "k-…", "fingerprint": "…", "paired": true, "source": "mdns+saved",
  "verified": true, "conflict": false}]
```

`source` is `mdns`, `saved` or `mdns+saved`. `verified` is `true` for an address from
the address book (typed by the user, or proven over TLS with the pinned certificate),
`false` for an advert that claims a saved panel's kiosk id but did not prove it, and
`null` for a panel not in the address book. `conflict` marks an advert whose kiosk id
another address holds; commands never send to such an advert (`docs/security.md`).

JSON output is data: names are exactly as the panels sent them, with control, bidi and
zero-width characters written as `\\u` escapes. Everything else the commands print has
such characters removed.
"""


def _walk(group: click.Group, prefix: list[str]) -> list[list[str]]:
    paths = []
    for name in sorted(group.commands):
        command = group.commands[name]
        paths.append([*prefix, name])
        if isinstance(command, click.Group):
            paths += _walk(command, [*prefix, name])
    return paths


def render() -> str:
    """The whole text of docs/cli.md."""
    runner = CliRunner(env={"CLASSCAST_LANG": "en", "COLUMNS": "100"})
    parts = [HEADER]
    sections: list[tuple[str, click.Command, list[str]]] = [("classcast", cli, [])] + [
        ("classcast " + " ".join(p), cli, p) for p in _walk(cli, [])
    ]
    sections.append(("classcast-kiosk", kiosk_main, []))
    assert isinstance(kiosk_main, click.Group)
    sections += [("classcast-kiosk " + " ".join(p), kiosk_main, p) for p in _walk(kiosk_main, [])]
    for title, command, args in sections:
        result = runner.invoke(command, [*args, "--help"], prog_name=title.split()[0])
        if result.exit_code != 0:
            raise RuntimeError(f"{title} --help failed: {result.output}")
        parts.append(f"\n## `{title}`\n\n```\n{result.output.rstrip()}\n```\n")
    return "".join(parts)


def main() -> int:
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
