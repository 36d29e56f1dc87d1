#!/usr/bin/env bash
# Install avsc for this user (no Python needed): the app goes to ~/.local/lib/avsc,
# the commands avsc and avsc-gui to ~/.local/bin, a menu entry to ~/.local/share.
#   ./install.sh [--prefix DIR]     install (DIR defaults to ~/.local)
#   ./install.sh --uninstall [--prefix DIR]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX="$HOME/.local"
ACTION=install
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --uninstall) ACTION=uninstall; shift ;;
        *) echo "usage: $0 [--prefix DIR] [--uninstall]" >&2; exit 2 ;;
    esac
done
LIB="$PREFIX/lib/avsc" BIN="$PREFIX/bin" APPS="$PREFIX/share/applications"
ICONS="$PREFIX/share/icons/hicolor/256x256/apps"

if [ "$ACTION" = uninstall ]; then
    rm -rf "$LIB" "$BIN/avsc" "$BIN/avsc-gui" "$APPS/avsc.desktop" "$ICONS/avsc.png"
    echo "avsc removed from $PREFIX (models and settings in your home folder are kept)"
    exit 0
fi
mkdir -p "$PREFIX/lib" "$BIN" "$APPS" "$ICONS"
# Copy next to the target, then swap, so an interrupted install leaves the old one working.
rm -rf "$LIB.new"
cp -a "$HERE/avsc" "$LIB.new"
rm -rf "$LIB"
mv "$LIB.new" "$LIB"
ln -sfn "$LIB/avsc" "$BIN/avsc"
ln -sfn "$LIB/avsc-gui" "$BIN/avsc-gui"
cp "$HERE/avsc.png" "$ICONS/avsc.png"
sed "s|@BIN@|$BIN|" "$HERE/avsc.desktop" > "$APPS/avsc.desktop"
echo "avsc installed in $LIB"
# The window needs a few X11 libraries of the system; name them now rather than at the
# first start from the menu, where nobody sees the message.
"$LIB/avsc-gui" --check-system >/dev/null 2>"$LIB/.system-check" || {
    sed 's/^avsc-gui: error: the window cannot open: /avsc-gui: /' "$LIB/.system-check" >&2
}
rm -f "$LIB/.system-check"
case ":$PATH:" in
    *":$BIN:"*) ;;
    *) echo "add $BIN to your PATH to run avsc and avsc-gui from a terminal" ;;
esac
