"""Monitoring: Alertmanager webhook receiver that triggers retraining through GitHub."""
