"""The fleet road, analyst side (issue 23): batches from the volunteers' probes, read from a
bucket or a folder, into one Hive-partitioned Parquet dataset (:mod:`.dataset`) that DuckDB,
ClickHouse and Spark read (:mod:`.query`); :mod:`.ingest` reads and checks the batches."""

from pathlib import Path

MANIFEST = "_fleet.sqlite"  # what makes a folder a fleet dataset (probe.analyst.fleet.dataset)


def is_dataset(path: str | Path | None) -> bool:
    """Whether ``path`` is a fleet dataset folder (cheap: imports neither pyarrow nor DuckDB)."""
    return path is not None and (Path(path) / MANIFEST).is_file()
