"""Running Accord in production: request ids and JSON logs, Prometheus metrics, backups."""
