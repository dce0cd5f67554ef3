"""Deployment: the KServe canary controller driven by Prometheus analysis."""
