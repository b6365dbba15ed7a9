"""Ingest: observations from any channel, normalised, validated, stored, then published."""
