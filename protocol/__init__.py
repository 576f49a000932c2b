"""Wire format and client of the Neural Style daemon (pure Python: pyzmq and msgpack only)."""
