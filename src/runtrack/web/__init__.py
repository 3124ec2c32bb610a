"""The HTTP layer: the JSON API and the dashboard, served by one FastAPI app."""
