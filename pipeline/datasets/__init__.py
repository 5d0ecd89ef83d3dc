"""Real datasets: YAML specs that map a dataset's files onto the data contract (docs/datasets.md)."""
