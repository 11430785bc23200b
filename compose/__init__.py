"""Package data: the docker compose stack, its Prometheus and Litestream configs and
the Grafana provisioning with the rendered boards (installed as ``pitwatch.compose``;
read through :mod:`pitwatch.core.resources`)."""
