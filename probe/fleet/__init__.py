"""The fleet road (issue 23): a probe's measurements reach the collective's analysts through
object storage.

Contract: ``batch`` is the one format of what travels (canonical records, zstd, signed by the
probe, sealed to the collective); ``s3`` is the one seam where bytes touch the object store
(credentials or pre-signed URLs, optionally through a SOCKS5 proxy); ``outbox`` is the
store-and-forward table (what was made, what the store acknowledged); ``upload`` is one upload
run, what ``probe upload`` and the daemon call. This layer sits under the daemon and the
analyst's tools and over the round, the store and the evidence: it measures nothing.
"""
