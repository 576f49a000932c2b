"""The daemon side: the engine (pure tensor math) and the server (sockets, queue, limits)."""
