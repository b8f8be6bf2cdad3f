"""Customer sync pipeline: MAN customer users into e-commerce platforms."""
