"""The routing engine and its API (control socket)."""
