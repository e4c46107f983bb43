"""The Data Buffer: durable chunk files, counters and batch state; the pipeline's source of truth.

`databuffer.storage.Storage` is the engine (no HTTP); `databuffer.app.create_app` the service.
"""
