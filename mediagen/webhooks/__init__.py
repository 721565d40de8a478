"""Completion webhooks: written to an outbox with a job's final state (``outbox``), signed and sent
with retries (``delivery``)."""
