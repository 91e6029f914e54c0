"""The drift job: Evidently report on two monthly snapshots -> retrain decision -> status ConfigMap."""
