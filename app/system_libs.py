"""The system libraries Qt's X11 platform plugin needs, checked before Qt tries to load it.

Qt's wheels bring Qt itself but not the X11 helper libraries of the system (``libxcb-*``).
Without one of them Qt prints "could not load the Qt platform plugin xcb" and aborts the
process, which tells a user nothing they can act on. :func:`missing_libraries` asks the
dynamic linker (``ldd`` on the plugin, which lists what it links, and a load attempt for
``libxcb-cursor``, which Qt opens at run time) and :func:`problem` names the Debian/Ubuntu
packages to install. ``python -m app.system_libs --install`` installs them (``make gui``
runs it).

Qt-free: it runs before ``QApplication`` exists.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

# Debian/Ubuntu package of each library Qt's xcb plugin may miss.
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-util.so.1": "libxcb-util1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb.so.1": "libxcb1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}
# Opened with dlopen by Qt (since 6.5), so ldd does not list it.
RUNTIME_LOADED = ("libxcb-cursor.so.0",)


def uses_xcb(environ: dict[str, str] | None = None) -> bool:
    """Whether Qt will try its X11 plugin: on Linux, unless another platform is chosen."""
    environ = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":")[0].split(";")[0] == "xcb"
    return environ.get("XDG_SESSION_TYPE") != "wayland" or not environ.get("WAYLAND_DISPLAY")


def xcb_plugin() -> Path | None:
    """Qt's ``libqxcb.so`` in the installed PySide6 (or the packaged app).

    Found on disk rather than through ``QLibraryInfo``, so that this module stays free of
    Qt imports (it runs before Qt may load, and the architecture contract checks it).
    """
    roots = []
    bundled = getattr(sys, "_MEIPASS", None)
    if bundled:
        roots.append(Path(bundled) / "PySide6")
    spec = importlib.util.find_spec("PySide6")
    if spec is not None and spec.submodule_search_locations:
        roots += [Path(p) for p in spec.submodule_search_locations]
    for root in roots:
        for plugins in (root / "Qt" / "plugins", root / "plugins"):
            plugin = plugins / "platforms" / "libqxcb.so"
            if plugin.exists():
                return plugin
    return None


def _not_found_by_ldd(library: Path) -> list[str]:
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        out = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split("=>")[0].strip() for line in out.stdout.splitlines()
            if "not found" in line]


def _loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_libraries(plugin: Path | None = None) -> list[str]:
    """Shared libraries (sonames) that Qt's xcb plugin needs and the system lacks."""
    plugin = plugin or xcb_plugin()
    if plugin is None:
        return []
    missing = _not_found_by_ldd(plugin)
    missing += [s for s in RUNTIME_LOADED if s not in missing and not _loadable(s)]
    return list(dict.fromkeys(missing))


def packages_for(libraries: list[str]) -> list[str]:
    """Debian/Ubuntu packages providing ``libraries`` (unknown ones are left out)."""
    return list(dict.fromkeys(DEBIAN_PACKAGES[s] for s in libraries if s in DEBIAN_PACKAGES))


def problem(environ: dict[str, str] | None = None) -> str | None:
    """One line saying what to install, or ``None`` when the window can open."""
    if not uses_xcb(environ):
        return None
    missing = missing_libraries()
    if not missing:
        return None
    packages = packages_for(missing)
    fix = (f"install them with: sudo apt install {' '.join(packages)}" if packages
           else "install them with your system's package manager")
    return (f"the window cannot open: Qt's X11 plugin needs system libraries that are "
            f"missing: {', '.join(missing)}; {fix} (or run 'make gui' from the source tree)")


def install(packages: list[str]) -> int:
    """Install ``packages`` with apt-get when this process may (root, or sudo without a
    password); otherwise print the command. Returns an exit code."""
    if shutil.which("apt-get") is None:
        print(f"install these packages: {' '.join(packages)}", file=sys.stderr)
        return 1
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if prefix and shutil.which("sudo") is None:
        print(f"run: sudo apt-get install {' '.join(packages)}", file=sys.stderr)
        return 1
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if subprocess.run(command, env=env).returncode == 0:
        return 0
    # A fresh machine may not have package lists yet.
    subprocess.run([*prefix, "apt-get", "update", "-q"], env=env)
    return subprocess.run(command, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    missing = missing_libraries()
    if not missing:
        return 0
    packages = packages_for(missing)
    if "--install" in argv and packages:
        return install(packages)
    print(problem({"QT_QPA_PLATFORM": "xcb"}), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
