"""Datasets: raw sources -> (Ray Data) -> parquet shards + manifest -> training arrays."""
