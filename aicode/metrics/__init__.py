"""What the server measures about itself, exported at /metrics for Prometheus."""
