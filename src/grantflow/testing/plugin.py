"""The grantflow pytest plugin (fixtures land here)."""
