"""The audio networks' inputs: MEL, gammatone and CQT spectrograms with deltas."""

from avsc_core.features.cache import FeatureCache, content_key, default_cache_dir
from avsc_core.features.extract import FeatureExtractor
from avsc_core.features.files import file_features, file_frames

__all__ = [
    "FeatureCache",
    "FeatureExtractor",
    "content_key",
    "default_cache_dir",
    "file_features",
    "file_frames",
]
