"""``classcast-kiosk``: start the kiosk of one classroom panel."""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import click

from i18n import N_
from kiosk.app import KioskApp, open_window, run_until_signal, run_with_window
from kiosk.config import ConfigError, KioskConfig, load_config
from kiosk.i18n import TranslatedGroup, option, t
from kiosk.memory import tune_allocator
from kiosk.sdnotify import SystemdNotifier
from kiosk.tokens import TokenStore
from protocol.errors import ClassCastError, UsageLogError

logger = logging.getLogger(__name__)

_TYPES = {
    "str": N_("text in quotes"),
    "int": N_("a whole number"),
    "float": N_("a number"),
    "bool": N_("true or false"),
    "list": N_("a list in square brackets"),
}
"""How each type of a kiosk.toml setting is named to the admin."""

_ROLES = {"teacher": N_("teacher"), "admin": N_("admin")}
"""The roles of a pairing, as the admin reads them."""

_CONFIG_PROBLEMS = {
    "unreadable": N_(
        "The settings file {path} cannot be read. Check that it exists, is UTF-8 text and "
        "may be read, then start the kiosk again."
    ),
    "bad_toml": N_(
        "{path} has a mistake on line {line}. Fix it in a text editor and start the kiosk again."
    ),
    "unknown_key": N_(
        "{path}: unknown setting {key} (known: {known}). Fix the spelling and start the "
        "kiosk again."
    ),
    "wrong_type": N_("{path}: {key} must be {kind}. Fix it and start the kiosk again."),
    "video_output": N_(
        "{path}: video_output must be one of {choices}. Fix it and start the kiosk again."
    ),
    "mdns_interfaces": N_(
        "{path}: mdns_interfaces must be IPv4 addresses separated by commas, such as "
        '"192.168.1.40". Fix it and start the kiosk again.'
    ),
    "web_allow": N_(
        '{path}: web_allow must list site names such as ["lib.school.ru", "*.school.ru"]; '
        "{entry} is not one. Fix it and start the kiosk again."
    ),
    "negative": N_("{path}: {key} must not be negative. Fix it and start the kiosk again."),
    "short_secret": N_(
        "{path}: admin_secret must have at least {min_chars} characters. Set a longer "
        "secret and start the kiosk again."
    ),
    "timezone": N_(
        "{path}: timezone {zone} is not a known time zone. Give an IANA name such as "
        '"Europe/Moscow", "Asia/Novosibirsk" or "Asia/Vladivostok", or remove the line to '
        "use the system's time zone, and start the kiosk again."
    ),
    "school_id": N_(
        "{path}: school_id {value} is not a school id. Use lower-case Latin letters, digits, "
        '".", "_" and "-", up to 64 characters, such as "school-17" (the same id on every '
        "panel of the school), and start the kiosk again."
    ),
    "mdns_env": N_(
        "The environment variable CLASSCAST_MDNS_INTERFACES must hold IPv4 addresses "
        "separated by commas, such as 127.0.0.1 (now: {value}). Fix it and start the kiosk "
        "again."
    ),
}
"""The text of each ``reason`` of :class:`kiosk.config.ConfigError`."""


def config_error_text(exc: ConfigError) -> str:
    """A settings problem as the admin reads it, with what to do (never the English message)."""
    values: dict[str, object] = {"path": exc.path or "", "key": exc.key or "", **exc.values}
    if exc.reason == "wrong_type":
        values["kind"] = t(_TYPES.get(str(exc.values.get("type")), "text in quotes"))
    msgid = _CONFIG_PROBLEMS.get(exc.reason)
    if exc.reason == "bad_toml" and "line" not in values:
        msgid = N_("{path} has a mistake. Fix it in a text editor and start the kiosk again.")
    if msgid is None:
        msgid = N_("{path}: a setting is wrong. Fix it and start the kiosk again.")
    return t(msgid, **values)


def os_error_text(exc: OSError) -> str:
    """A file or network problem at start, with what to check."""
    where = exc.filename or t("the network")
    if isinstance(exc, PermissionError):
        return t(
            "The kiosk may not use {path}. Give its user the right to write there, or "
            "choose another folder with --state-dir, and start it again.",
            path=where,
        )
    if exc.errno == errno.EADDRINUSE:
        return t(
            "The port is taken by another program (another kiosk?). Stop it, or choose "
            "another port with --port, and start the kiosk again."
        )
    if exc.errno == errno.ENOSPC:
        return t("The disk is full. Free some space and start the kiosk again.")
    return t(
        "The kiosk cannot use {path} ({errno}). Check the path, its permissions and the "
        "free disk space, and start it again.",
        path=where,
        errno=errno.errorcode.get(exc.errno or 0, "?"),
    )


def start_error_text(exc: ClassCastError, config: KioskConfig) -> str:
    """A ClassCast error that stopped the kiosk at start."""
    if isinstance(exc, UsageLogError):
        return t(
            "The usage log in {path} cannot be opened. Check that the folder may be written "
            "and the disk has room, then start the kiosk again.",
            path=config.state_dir,
        )
    return t(
        "The kiosk could not start ({code}): the lines above say why. Fix the cause and "
        "start it again.",
        code=exc.code,
    )


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
        config = load_config(config_path, state_dir=state_dir).with_overrides(
            room=room,
            school=school,
            host=host,
            port=port,
            state_dir=state_dir,
            mode=mode,
            lang=lang,
        )
    except ConfigError as exc:
        logger.error("bad settings: %s", exc)  # the journal's line, in English
        raise click.ClickException(config_error_text(exc)) from None
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
            logger.error("cannot open the panel window: %s", exc)
            raise click.ClickException(
                t(
                    "The panel window cannot be opened. Check that a screen is connected and "
                    "the desktop session has started, or run the kiosk with --headless."
                )
            ) from None
        # What exists now lives as long as the process: keep it out of garbage
        # collections, which then stay short while crowds of connections come and go.
        gc.freeze()
        if window is None:
            asyncio.run(run_until_signal(app, ready, notifier))
        else:
            run_with_window(app, window, ready, notifier)
    except ClassCastError as exc:
        logger.error("cannot start: %s", exc)
        raise click.ClickException(start_error_text(exc, config)) from None
    except OSError as exc:
        logger.error("cannot start: %s", exc)
        raise click.ClickException(os_error_text(exc)) from None


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
        raise click.ClickException(
            t(
                "No pairing matches {selector}. See them with `classcast-kiosk tokens list`.",
                selector=selector,
            )
        )
    for g in gone:
        click.echo(
            t(
                "Revoked {controller_id} ({name}, {role}).",
                controller_id=g.controller_id,
                name=g.name,
                role=t(_ROLES.get(g.role, g.role)),
            )
        )
