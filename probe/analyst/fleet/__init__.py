"""The fleet road, analyst side (issue 23): batches from the volunteers' probes, read from a
bucket or a folder, into one Hive-partitioned Parquet dataset (:mod:`.dataset`) that DuckDB,
ClickHouse and Spark read (:mod:`.query`); :mod:`.ingest` reads and checks the batches."""
