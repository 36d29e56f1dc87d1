"""The ``avsc`` command line (see ``CONTRACT.md``).

Each command lives in its own module exposing ``register(subparsers)``, which adds an
argparse sub-parser whose ``func`` default takes the parsed arguments and returns an exit
code. :mod:`avsc_core.cli.main` lists the modules.
"""
