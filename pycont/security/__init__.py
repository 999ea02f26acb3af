"""What keeps a container in: Docker's security defaults, each one visible and switchable.

A container as root is the host's root user, in namespaces. What stops it from undoing its own
isolation is four more layers, applied by its first process just before exec:

- :mod:`.capabilities`: the 14 of root's ~41 privileges Docker keeps (capabilities(7));
- :mod:`.seccomp`: a filter on the system calls it may make (seccomp(2)), Docker's default profile;
- :mod:`.paths`: kernel files it must not read or write, masked or made read-only (proc(5));
- :mod:`.options`: the ``--cap-add``/``--cap-drop``/``--privileged``/``--security-opt``/
  ``--read-only`` flags that switch each of them, checked once into :class:`SecurityOptions`.

Nothing here is imported at ``import pycont``: the container's helper imports it when it runs.
"""
