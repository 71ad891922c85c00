"""Offline preference rounds from recorded robot episodes (`stare-retrain`)."""
