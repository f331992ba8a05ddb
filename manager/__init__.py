"""valley control plane: study grid, specs -> manifests, launch and lifecycle, MLflow records."""
