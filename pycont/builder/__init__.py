"""Dockerfile builds: the parser, the build context, and the builder with its cache.

``docker build`` turns a Dockerfile into an image: each ``RUN`` runs in a container on the
layers so far and its read/write layer becomes the step's layer; ``COPY``/``ADD`` write a
layer from the build context; the other instructions only change the image's config.
"""
