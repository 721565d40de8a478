"""The worker: one step of a claimed job (``step``), a sweep of every due job (``sweep``), result
copies beside the polling (``downloads``), leased housekeeping (``housekeeping``) and the loop that
runs them all on a schedule (``loop``)."""
