"""Loading a bundle: validated manifest, settings, and its Keras models on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from avsc_core.backbones import backbone_entry
from avsc_core.bundle.manifest import BundleError, read_manifest, statistics_entries, verify_file
from avsc_core.config import FeatureConfig, MediaConfig


@dataclass
class Bundle:
    """A trained model as stored on disk."""

    root: Path
    manifest: dict[str, Any]
    _models: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def strategy(self) -> str:
        return self.manifest["strategy"]

    @cached_property
    def media(self) -> MediaConfig:
        return MediaConfig.from_dict(self.manifest["media"])

    @cached_property
    def features(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.manifest["features"])

    @property
    def backbone_names(self) -> list[str]:
        return [b["name"] for b in self.manifest["backbones"]]

    def backbone_entry(self, name: str) -> dict[str, Any]:
        for entry in self.manifest["backbones"]:
            if entry["name"] == name:
                return entry
        raise KeyError(name)

    def backbone_feature(self, name: str) -> str:
        """What backbone ``name`` takes (``"mel"``, ``"gam"``, ``"cqt"``, ``"frames"``).

        The manifest's word; bundles written before it recorded one (two-phase bundles
        only) have the registry's (:mod:`avsc_core.backbones`).
        """
        feature = self.backbone_entry(name).get("feature") or backbone_entry(name).feature
        if feature is None:
            raise BundleError(self.root, f"the manifest does not say what {name} takes")
        return feature

    @property
    def head_names(self) -> list[str]:
        return list(self.manifest["heads"])

    def _load(self, key: str, entry: dict[str, str]) -> Any:
        if key not in self._models:
            import keras

            import avsc_core.models  # noqa: F401  (registers the custom layers)

            path = verify_file(self.root, entry)
            try:
                self._models[key] = keras.saving.load_model(path, safe_mode=True, compile=False)
            except Exception as exc:  # Keras raises many types for a bad file
                raise BundleError(self.root, f"{entry['file']} cannot be loaded ({exc})") from exc
        return self._models[key]

    def backbone(self, name: str) -> Any:
        return self._load(f"backbone/{name}", self.backbone_entry(name))

    def head(self, name: str) -> Any:
        if name not in self.manifest["heads"]:
            raise KeyError(name)
        return self._load(f"head/{name}", self.manifest["heads"][name])

    @property
    def exports(self) -> dict[str, dict[str, Any]]:
        """Optimised copies of the networks (``avsc export``), keyed like ``"tflite-int8"``."""
        return dict(self.manifest.get("exports", {}))

    def export_file(self, entry: dict[str, Any]) -> Path:
        """The checked path of one exported network (an entry of :attr:`exports`)."""
        return verify_file(self.root, entry)

    def verify(self) -> None:
        """Check every listed file against its checksum."""
        entries = [*self.manifest["backbones"], *self.manifest["heads"].values(),
                   *statistics_entries(self.manifest)]
        for export in self.exports.values():
            entries += [*export.get("backbones", {}).values(), *export.get("heads", {}).values()]
        for entry in entries:
            verify_file(self.root, entry)


def load_bundle(root: str | Path, verify: bool = True) -> Bundle:
    """Open the bundle at ``root``; with ``verify``, check all checksums now."""
    root = Path(root)
    bundle = Bundle(root, read_manifest(root))
    if verify:
        bundle.verify()
    return bundle
