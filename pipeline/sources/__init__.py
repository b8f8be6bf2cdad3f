"""Source stage: the MAN customer-users API, read page by page."""
