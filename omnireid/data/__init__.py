"""Data: image reading and transforms (datasets and loaders come with the data issue)."""
