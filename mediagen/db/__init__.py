"""The database: the engine and its sessions (``engine``), the tables (``tables``), and the one
way every claimable row is leased to a worker (``leases``)."""
