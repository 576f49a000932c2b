"""The warm daemon: one ROUTER socket loop, one worker thread on the device, limits and security.

Modules, one job each: ``main`` (options and lifecycle), ``router`` (the socket loop),
``worker`` (the device thread), ``jobs`` (job records and the queue), ``outbox``
(coalescing per-connection send queues), ``limits`` (request validation), ``decode``
(request images ↔ tensors), ``style_cache`` (bounded LRU of Gram targets) and
``security`` (loopback check and CURVE).  No tensor math lives here.
"""
