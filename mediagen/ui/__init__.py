"""The only Streamlit glue: shared widgets and access to the running services."""
