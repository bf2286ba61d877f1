#!/bin/sh
# Installs the unpacked bundle for every user of this machine, or removes it:
#   sudo ./install.sh            install into /opt/em-console
#   sudo ./install.sh --uninstall
# Each operator's cache (~/.local/share/em-console) is left alone on uninstall:
# it may hold acknowledgements that have not reached the backend yet.
set -eu
PREFIX=/opt/em-console
APPS=/usr/share/applications
ICONS=/usr/share/icons/hicolor
here=$(cd "$(dirname "$0")" && pwd)

remove() {
    rm -rf "$PREFIX"
    rm -f /usr/local/bin/em-console "$APPS/em-console.desktop" \
        "$ICONS/256x256/apps/em-console.png" "$ICONS/scalable/apps/em-console.svg"
}

if [ "${1:-}" = "--uninstall" ]; then
    remove
    echo "EM Console removed."
    exit 0
fi
[ -x "$here/em-console" ] || { echo "Run this from the unpacked em-console folder." >&2; exit 1; }
remove  # an upgrade replaces the whole folder: no files of an older version stay behind
mkdir -p "$PREFIX" "$APPS" "$ICONS/256x256/apps" "$ICONS/scalable/apps"
cp -a "$here/." "$PREFIX/"
ln -s "$PREFIX/em-console" /usr/local/bin/em-console
install -m 644 "$here/share/em-console.desktop" "$APPS/em-console.desktop"
install -m 644 "$here/share/em-console.png" "$ICONS/256x256/apps/em-console.png"
install -m 644 "$here/share/em-console.svg" "$ICONS/scalable/apps/em-console.svg"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$APPS" || true
"$PREFIX/em-console" --version
