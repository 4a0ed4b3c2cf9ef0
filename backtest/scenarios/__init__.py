"""The bundled scenario files (TOML), found with importlib.resources."""
