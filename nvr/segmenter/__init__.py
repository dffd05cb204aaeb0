"""Writing segment files durably, and repairing them after a crash."""
