"""The container runtime: lifecycle, state on disk, and the helper process."""
