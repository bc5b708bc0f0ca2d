"""The database boundary: the only package that imports sqlalchemy."""
