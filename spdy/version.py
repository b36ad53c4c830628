"""spdy's version, in a module of its own so that any layer can record it (an artifact's
manifest, `spdy --version`) without importing the `spdy` package and, through it, the API."""

__version__ = "0.1.0"
