"""StreamFlow batch jobs: demo data, bootstrap (Feast apply + materialize), training, drift."""
