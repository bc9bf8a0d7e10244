"""Input pipelines: built-in synthetic speech data and real-corpus builders.

TensorFlow and tensorflow-datasets live here (never in `s4jax/`).
"""
