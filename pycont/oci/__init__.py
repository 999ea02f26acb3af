"""An OCI runtime made of pycont's engine: ``pycont-oci create/start/state/kill/delete/exec``.

The runtime specification (github.com/opencontainers/runtime-spec) is the contract between a
container manager (podman, through conmon) and the program that makes the container: a bundle
(a root filesystem and config.json) goes in, a process in namespaces and cgroups comes out. This
package reads the bundle (:mod:`.bundle`), keeps the state (:mod:`.state`), and builds the
container with the same kernel seam, root helpers, cgroup drivers and security modules that
``pycont run`` uses.
"""
