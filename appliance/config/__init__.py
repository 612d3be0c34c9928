"""Configuration: the mapping from the native model's JSON to engine objects."""
