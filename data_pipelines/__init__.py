"""Input pipelines: built-in synthetic speech data and real-corpus builders.

  input_pipeline  create_train_iterator / create_eval_iterator
  synthetic       the built-in dataset: generation, seeding, caching
  offline         the offline Debian corpus: reading it, mixing on the fly
  offline_build   building it (launch/build_corpus.py); offline_sources:
                  the packages, voices and texts it is made of
  rir             room impulse responses (image sources + decaying tail)
  speech_synth    source-filter speech-like signals
  noise_synth     white/pink/brown, babble, hum, clicks, machine noise
  mixing          SNR / level mixing (DNS Challenge recipe)
  layouts         finding and checking real corpora on disk
  builders        tensorflow-datasets builders (VoiceBank+DEMAND, N-DNS,
                  LibriMix, WHAM!)
  audio_io        reading, writing, resampling audio files

TensorFlow and tensorflow-datasets are imported only by `builders` and when
an iterator is created (never by `s4jax/`).
"""

import os as _os

# TensorFlow serves tensorflow-datasets here, which need neither
# its oneDNN kernels nor its INFO banners (on CPUs without AVX-512 oneDNN also
# logs an error-looking line); the user's own settings win.
_os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
_os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
