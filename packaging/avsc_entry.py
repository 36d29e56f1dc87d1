"""Entry point of the packaged application: one executable, two commands.

The installer links ``avsc-gui`` to the ``avsc`` executable; the name it is started by
chooses the desktop app or the command line. ``freeze_support`` must run first: the
decoder, training and labelling workers are ``spawn``-ed copies of this executable.
"""

import multiprocessing
import sys
from pathlib import Path

if __name__ == "__main__":
    multiprocessing.freeze_support()
    if Path(sys.argv[0]).name.startswith("avsc-gui"):
        from app.main import main
    else:
        from avsc_core.cli.main import main
    sys.exit(main())
