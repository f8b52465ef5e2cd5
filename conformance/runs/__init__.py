"""Runs and their results: the detection matrix, merging shards, comparing runs, shard selection, nightly
matrices.
"""
