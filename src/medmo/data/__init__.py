"""Medical datasets as unified records (see schema.py)."""
