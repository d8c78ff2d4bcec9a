"""Built-in adapters, each a plugin module registered exactly like a third-party plugin."""
