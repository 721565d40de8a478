"""The tests' throwaway PostgreSQL cluster: the package's own (``mediagen.db.local_cluster``), which
``make scaled`` starts too."""

from mediagen.db.local_cluster import MAX_CONNECTIONS, SERVER_USER, Cluster, server_binaries

__all__ = ["MAX_CONNECTIONS", "SERVER_USER", "Cluster", "server_binaries"]
