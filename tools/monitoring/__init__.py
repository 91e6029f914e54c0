"""Observability beyond the API's own /metrics: Grafana dashboards as code, and a local
Prometheus + Pushgateway stack (`make observe`) that proves them and the chart's alert rules."""
