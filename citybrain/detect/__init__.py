"""Streaming anomaly detection for every numeric series the city brain ingests."""

from citybrain.detect.detector import Detector, DetectorConfig, default_detector, detect_series
from citybrain.detect.nab import run_nab

__all__ = ["Detector", "DetectorConfig", "default_detector", "detect_series", "run_nab"]
