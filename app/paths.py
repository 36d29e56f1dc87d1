"""Where the app keeps its settings, logs and the data it makes (platformdirs).

On Linux these follow ``$XDG_CONFIG_HOME``, ``$XDG_STATE_HOME`` and ``$XDG_DATA_HOME``, so
tests and portable installs can redirect them.
"""

from __future__ import annotations

from pathlib import Path

APP_NAME = "avsc"


def config_dir() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME))


def log_dir() -> Path:
    from platformdirs import user_log_dir

    return Path(user_log_dir(APP_NAME))


def data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME))


def sample_data_dir() -> Path:
    """Where "Make a sample model" writes its synthetic dataset."""
    return data_dir() / "sample-data"


def models_dir() -> Path:
    """The default parent folder of models trained from the app."""
    return data_dir() / "models"
