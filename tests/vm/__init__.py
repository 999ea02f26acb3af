"""The VM harness: run_v2.py runs tests inside a qemu guest with a pure cgroup v2 hierarchy."""
