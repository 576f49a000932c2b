"""The warm daemon: one ROUTER socket loop, one worker thread on the device, limits and security.

Modules, one job each: ``main`` (options and lifecycle), ``bind`` (the ROUTER's options, an
exclusive ipc path), ``router`` (the socket loop: routes replies and worker events), ``reader``
(requests read frame by frame within their bounds), ``limits`` (this daemon's limits),
``admission`` (a decoded ``stylize`` → a ``StylizeRequest``, or a refusal),
``jobs`` (job records, ``StylizeRequest`` and the queue), ``worker`` (the device thread; it encodes every job
message), ``events`` (``WorkerEvent``, the one type from the worker to the loop), ``threads``
(the CPU thread policy), ``outbox`` (coalescing per-connection send queues), ``decode``
(request images ↔ tensors), ``style_cache`` (bounded LRU of Gram targets) and ``security``
(loopback check and CURVE).  No tensor math lives here.
"""
