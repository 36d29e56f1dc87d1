"""Model bundles: a folder with ``manifest.json`` and the ``.keras`` files it lists."""

from avsc_core.bundle.manifest import (
    MANIFEST,
    SCHEMA_VERSION,
    BundleError,
    export_key,
    read_manifest,
    record_export,
)
from avsc_core.bundle.model import Bundle, load_bundle

__all__ = [
    "MANIFEST",
    "SCHEMA_VERSION",
    "Bundle",
    "BundleError",
    "export_key",
    "load_bundle",
    "read_manifest",
    "record_export",
]
