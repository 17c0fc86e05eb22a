#!/usr/bin/env bash
# Set up a development or CI machine: system packages, a venv in .venv, the project.
# Idempotent and quick when nothing changed. Usage: scripts/setup.sh [--test]
# (--test also installs what only the tests use: Chromium renders the HTML report,
# Xvfb and cage with Xwayland run the kiosk's window on a private display, LibreOffice
# makes office documents into pages as a teacher's computer does, avahi checks discovery
# inside network namespaces; an avahi-daemon installed here is left disabled).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the kiosk and the tests use (Debian names).
APT_PACKAGES=(fonts-dejavu-core libvlc5 libvlc-bin vlc-plugin-base vlc-plugin-video-output)
APT_PACKAGES+=(libegl1 libegl-mesa0 libgl1-mesa-dri)  # EGL: the window's offscreen --headless
if [ "${1:-}" = "--test" ]; then
  APT_PACKAGES+=(chromium xvfb xauth cage xwayland)
  # Office documents become PDF pages on the controller: LibreOffice headless, its uno
  # module for the warm converter, and fonts metric-compatible with Microsoft's (Cyrillic).
  APT_PACKAGES+=(libreoffice-impress libreoffice-writer python3-uno)
  APT_PACKAGES+=(fonts-crosextra-carlito fonts-crosextra-caladea fonts-liberation2)
  # The CSV reports are opened by LibreOffice Calc in a test, as a spreadsheet user would.
  APT_PACKAGES+=(libreoffice-calc)
  # Discovery is checked against avahi, the mDNS stack of the school's Linux machines:
  # a test runs the daemon (on a private D-Bus) inside network namespaces it creates.
  APT_PACKAGES+=(avahi-daemon avahi-utils dbus-daemon)
  # The district database: the tests start their own PostgreSQL server (initdb, pg_ctl)
  # in a temporary directory; nothing runs as a service.
  APT_PACKAGES+=(postgresql)
  if [ -d /run/systemd/system ] && ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed"; then
    POSTGRES_NEW=1
  fi
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}" >&2
  # Installed here for the tests only: the machine's own avahi must never start, not even
  # for the moment between its installation and its being disabled (it would multicast on
  # the machine's real interfaces). Masked before it exists, it is never started.
  if [[ " ${missing[*]} " == *" avahi-daemon "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl mask avahi-daemon.service avahi-daemon.socket >/dev/null 2>&1 || true
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Installed here for the tests only: the machine's own avahi stays off its interfaces.
  if [[ " ${missing[*]} " == *" avahi-daemon "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now avahi-daemon.socket avahi-daemon.service >/dev/null 2>&1 || true
  fi
  # Likewise the machine's own PostgreSQL cluster stays stopped: tests run their own.
  if [ -n "${POSTGRES_NEW:-}" ]; then
    $SUDO systemctl disable --now postgresql.service >/dev/null 2>&1 || true
  fi
fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: Python 3.11 or newer is needed (found $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.classcast-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing ClassCast and its dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/python -c 'import controller.cli, kiosk.cli'
  echo "$want" > "$stamp"
fi
