"""Transform stage: decode, validate, de-duplicate, map and hash."""
