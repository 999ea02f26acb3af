"""The container runtime: lifecycle, state on disk, and the helper process.

``container`` is the facade (Container, create, run, get, containers); ``spec`` checks what to
run, ``api`` makes containers from it, ``state`` keeps the one status machine and the records,
``launcher`` starts the ``shim`` (directly or through the ``forkserver``), which talks back over
``protocol`` and runs ``pid1`` in the new namespaces until exec.
"""
