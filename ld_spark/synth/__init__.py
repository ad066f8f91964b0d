"""Synthetic national extracts with planted truth (see shared contract, sections 1-4)."""
