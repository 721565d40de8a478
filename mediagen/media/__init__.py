"""Media: copying provider output into storage (``ingest``), looking inside it (``inspect``),
other formats on demand (``derive``), and the names of everything stored (``keys``)."""
