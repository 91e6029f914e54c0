"""StreamFlow shared core: settings, the feature schema, SQL tables, model artifact, logging."""

__version__ = "0.1.0"
