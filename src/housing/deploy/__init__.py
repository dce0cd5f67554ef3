"""Deployment: the KServe canary controller driven by Prometheus analysis (canary, analysis, isvc, kube,
notify), overlay rendering (render) and CD's CI gate (ci_gate); docs/kubernetes.md, docs/gitops.md."""
