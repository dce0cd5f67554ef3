"""Monitoring: the Alertmanager webhook receiver that triggers retraining through GitHub (retrain_trigger),
the drift result pushed to Prometheus (drift_export), Prometheus rules for promtool (promrules) and the
standard-library HTTP client they share (httpjson); docs/kubernetes.md."""
