"""StreamFlow's tooling: what runs on a laptop or in CI, never in a pod.

The layers (checked by import-linter in `make test`, contracts in pyproject.toml):
    tools/       this package: demo driver, load clients, benchmarks, local monitoring stack,
                 dashboards generator, toolchain installers. May import everything below.
    api/, jobs/  the services, one image each. Import only the core, never each other.
    streamflow/  the runtime core both services share. Imports nothing above it.
Nothing under tools/ is copied into an image (Dockerfile, .dockerignore).
"""
