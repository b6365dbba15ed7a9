"""The built-in demo city "Beijing (demo)" and the replay of real recorded series through ingest."""

from citybrain.demo.city import DemoCity, load_demo_city
from citybrain.demo.replay import Replay, run_demo
from citybrain.demo.series import MOMENTS, WINDOWS, read_air, read_traffic, window

__all__ = ["MOMENTS", "WINDOWS", "DemoCity", "Replay", "load_demo_city", "read_air", "read_traffic", "run_demo",
           "window"]
