"""The training and evaluation shell around the pure `s4jax` library.

Everything here touches the world outside a jitted function: files,
processes, signals, flags, clu writers, Orbax and ONNX. `s4jax/` stays pure
JAX + Flax; `launch/` programs are flags on top of this package.

* `trainer`: `train_and_evaluate` / `evaluate_checkpoint` (the loop, clu
  writers, SIGTERM handling, `config.json` in the work directory).
* `checkpoint`: Orbax `CheckpointManager` save/restore with clear errors.
* `evaluation`: whole-split evaluation, metric worker pools, JSON/Markdown
  reports, TensorBoard audio and spectrograms.
* `inference`: load a trained model from a work directory or checkpoint.
* `metrics`, `metrics_common`, `metrics_composite`, `metrics_dnsmos`: speech
  quality metrics in NumPy (PESQ, STOI, SI-SNR, composite measures, DNSMOS
  through onnxruntime), with process pools for batches.
* `progress`: console progress, speed and ETA of a run.
* `runtime`, `errors`: multi-host start-up, flags, logging, user errors.
"""
