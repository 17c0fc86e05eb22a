"""``classcast-kiosk``: start the kiosk of one classroom panel."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import click

from kiosk.app import KioskApp, open_window, run_until_signal, run_with_window
from kiosk.config import ConfigError, KioskConfig, load_config
from kiosk.i18n import TranslatedGroup, option
from kiosk.memory import tune_allocator
from kiosk.sdnotify import SystemdNotifier
from kiosk.tokens import TokenStore
from protocol.errors import ClassCastError


@click.group(
    cls=TranslatedGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
)
@option(
    "--config", "config_path", type=click.Path(path_type=Path), help="Settings file (kiosk.toml)."
)
@option("--room", help="Room name shown on the panel and used to find it.")
@option("--school", help="School name shown on the panel.")
@option("--host", help="Address to listen on (default 0.0.0.0).")
@option("--port", type=int, help="Port to listen on (0 = any free port).")
@option("--state-dir", type=click.Path(path_type=Path), help="Where media and logs live.")
@option("--fullscreen", "mode", flag_value="fullscreen", help="Fullscreen window (the default).")
@option("--windowed", "mode", flag_value="windowed", help="A normal window.")
@option("--headless", "mode", flag_value="headless", help="No window (servers, tests).")
@option("--lang", type=click.Choice(["ru", "en"]), help="Language of the panel.")
@option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(
    ctx: click.Context,
    config_path: Path | None,
    room: str | None,
    school: str | None,
    host: str | None,
    port: int | None,
    state_dir: Path | None,
    mode: str | None,
    lang: str | None,
    verbose: bool,
) -> None:
    """Run the kiosk of one classroom panel (or manage it: see the commands).

    Example:

        classcast-kiosk --room "Каб. 12" --school "Школа № 5" --headless
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(config_path).with_overrides(
            room=room,
            school=school,
            host=host,
            port=port,
            state_dir=state_dir,
            mode=mode,
            lang=lang,
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    ctx.obj = config
    if ctx.invoked_subcommand is not None:
        return
    tune_allocator()  # before any thread starts: a panel runs all day

    def ready(app: KioskApp) -> None:
        click.echo(f"ready {app.url} room={config.room!r} id={app.identity.kiosk_id}")
        sys.stdout.flush()

    notifier = SystemdNotifier()
    try:
        app = KioskApp(config)
        try:
            window = open_window(app)
        except Exception as exc:
            raise click.ClickException(f"cannot open the panel window: {exc}") from None
        # What exists now lives as long as the process: keep it out of garbage
        # collections, which then stay short while crowds of connections come and go.
        gc.freeze()
        if window is None:
            asyncio.run(run_until_signal(app, ready, notifier))
        else:
            run_with_window(app, window, ready, notifier)
    except ClassCastError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None


@main.group()
def tokens() -> None:
    """List or revoke the controllers paired with this panel.

    Example:

        classcast-kiosk --state-dir /var/lib/classcast tokens list
    """


@tokens.command("list")
@option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def tokens_list(config: KioskConfig, as_json: bool) -> None:
    """Show every paired controller: id, name, role, when it paired.

    Example:

        classcast-kiosk tokens list
    """
    grants = TokenStore(config.state_dir / "tokens.json").grants()
    if as_json:
        click.echo(json.dumps([asdict(g) for g in grants], ensure_ascii=False, indent=2))
        return
    for g in grants:
        click.echo(f"{g.controller_id}\t{g.role}\t{g.paired_at}\t{g.name}\t{g.token_hash[:12]}")


@tokens.command("revoke")
@click.argument("selector")
@click.pass_obj
def tokens_revoke(config: KioskConfig, selector: str) -> None:
    """Revoke pairings by controller id, teacher name, or token-hash prefix (8+ chars).

    Takes effect at once, also in a running kiosk and on its open connections.

    Example:

        classcast-kiosk tokens revoke c-3f2a9d0b1c2e4f5a
    """
    gone = TokenStore(config.state_dir / "tokens.json").revoke(selector)
    if not gone:
        raise click.ClickException(f"no pairing matches {selector!r}")
    for g in gone:
        click.echo(f"revoked {g.controller_id} ({g.name}, {g.role})")
