"""Testing helpers for grantflow users (being built)."""
