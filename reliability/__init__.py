"""The reliability suite: crash, dependency faults, partition, fuzz, soak and overload scenarios."""
