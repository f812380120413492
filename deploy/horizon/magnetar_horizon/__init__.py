"""Horizon additions for Magnetar, loaded by scripts/dashboard (not a Django app with models)."""
