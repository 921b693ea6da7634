"""Networks with named taps: the registry, weight loading and the multi-tap feature extractor."""

from .extractor import Backbone, FeatureExtractor
from .registry import DEFAULT_BACKBONE, SPECS, get_spec
from .spec import BackboneSpec, Tap, list_taps, resolve_taps
from .weights import RANDOM, load_model

__all__ = ["Backbone", "FeatureExtractor", "BackboneSpec", "Tap", "DEFAULT_BACKBONE", "SPECS", "get_spec",
           "list_taps", "resolve_taps", "load_model", "RANDOM"]
