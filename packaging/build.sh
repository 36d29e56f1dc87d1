#!/usr/bin/env bash
# Build the Linux installer: dist/avsc-<version>-linux-<arch>.tar.gz, which holds the app
# (Python and every library inside) and install.sh. Runs the built app before packing it.
#   packaging/build.sh            (from the repository root; `make package` does the same)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
VERSION=$("$PY" -c 'import avsc_core; print(avsc_core.__version__)')
ARCH=$(uname -m)
NAME="avsc-$VERSION-linux-$ARCH"
WORK=build/package
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}  # the analysis imports Qt modules

"$PY" -m pip install --quiet -c constraints.txt "pyinstaller==6.22.3"
rm -rf "$WORK" "dist/avsc" "dist/$NAME" "dist/$NAME.tar.gz"
"$PY" -m PyInstaller --noconfirm --log-level WARN --workpath "$WORK" --distpath dist \
    packaging/avsc.spec
ln -sf avsc dist/avsc/avsc-gui

packaging/smoke_test.sh dist/avsc

mkdir -p "dist/$NAME"
mv dist/avsc "dist/$NAME/avsc"
cp packaging/install.sh "dist/$NAME/install.sh"
cp packaging/avsc.desktop resources/icons/avsc.png "dist/$NAME/"
tar -C dist -czf "dist/$NAME.tar.gz" "$NAME"
du -sh "dist/$NAME" "dist/$NAME.tar.gz"
echo "built dist/$NAME.tar.gz: unpack it and run ./install.sh"
