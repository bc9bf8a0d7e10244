"""Audio front ends and losses (metrics live in `harness.metrics`).

* `s4jax.audio.stft`: STFT / iSTFT (torch conventions, channels-last
  `(..., frames, bins)`), magnitude masking with the noisy phase, and a
  hop-by-hop streaming STFT with exact overlap-add.
* `s4jax.audio.losses`: SI-SNR (N-DNS definition), SI-SDR, SNR in JAX.
* `s4jax.audio.pit`: permutation-invariant training losses.
* `harness.metrics`: evaluation metrics (NumPy; PESQ, STOI, DNSMOS, ...).

Submodules are imported explicitly (`from s4jax.audio import stft`).
"""

__all__ = [
  'losses',
  'permutation',
  'pit',
  'resample',
  'spectral_losses',
  'stft',
]
