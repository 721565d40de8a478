"""HTTP beside the Streamlit pages, on the same port: signed download links (``links``), the
routes (``routes``) and the mapping of the error tree to answers (``answers``)."""
