"""Deployment tests: Dockerfile, compose, Kubernetes manifests, Prometheus and the dashboard."""
