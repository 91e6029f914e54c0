"""`make bench`: how much the monitoring costs the service, and how far the drift job scales.

Every figure is a ratio measured side by side in one run (this machine is shared and noisy:
absolute times move between runs). Modules:
- throughput: /predict over loopback with wrk, against the same app without metrics and a bare
  FastAPI endpoint (the framework's ceiling);
- latency: feature lookup + model in process, with 1k and 1M users in the online store;
- drift: the whole drift job at 100k and 1M users per month, against plain scipy on arrays.
`python -m tools.bench --help` lists the sizes; results go to reports/bench.json.
"""
