"""Reconstruction benchmark: datasets, method variants, a resumable shardable runner, and reports."""
