"""mediagen: generate images and videos, store them, and keep every task's story.

The core never imports Streamlit; the dashboard (``app.py``, ``pages/``, ``mediagen.ui``) and the
CLI (``python -m mediagen``) both call the same functions.
"""

__version__ = "0.1.0"
