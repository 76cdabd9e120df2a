"""The pipeline YAML's sections as typed models, one module per section."""
