"""tensorflow-datasets builders for real corpora read from `manual_dir`.

Each builder scans its layout with `layouts` first (clear errors for missing
folders or files), then stores every signal as int16 at the configured
sample rate (resampling with `scipy.signal.resample_poly` where the files are
at another rate). Build with the ArrayRecord file format so the input
pipeline can read examples by index (`builder.as_data_source(split)`);
`prepare()` does this.

Builders: `voicebank_demand`, `ndns`, `librimix`, `wham`.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import audio_io, layouts

_INT16 = np.int16


@dataclasses.dataclass
class AudioConfig(tfds.core.BuilderConfig):
  """A corpus variant: sample rate and, for mixtures, speakers/mode/type."""

  sample_rate: int = 16000
  num_sources: int = 2
  mode: str = 'min'
  mixture: str = 'clean'


class _CorpusBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared machinery: features from `signals()`, examples from a scan."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  DESCRIPTION = ''
  HOMEPAGE = ''
  CITATION = ''

  def signals(self) -> tuple[str, ...]:
    raise NotImplementedError

  def scan(self, root: str) -> dict[str, list[layouts.Example]]:
    raise NotImplementedError

  def extra_features(self) -> dict:
    return {}

  def _info(self) -> tfds.core.DatasetInfo:
    sr = self.builder_config.sample_rate
    features = {
      name: tfds.features.Audio(shape=(None,), dtype=_INT16, sample_rate=sr)
      for name in self.signals()
    }
    features['key'] = tfds.features.Text()
    features.update(self.extra_features())
    return tfds.core.DatasetInfo(
      builder=self,
      description=self.DESCRIPTION,
      features=tfds.features.FeaturesDict(features),
      homepage=self.HOMEPAGE,
      citation=self.CITATION,
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    splits = self.scan(os.fspath(dl_manager.manual_dir))
    sr = self.builder_config.sample_rate
    lengths = {}
    for split, examples in splits.items():
      frames, rate = layouts.max_frames(examples, self.signals()[0])
      lengths[split] = int(np.ceil(frames * sr / rate))
    self.info.metadata['max_length'] = lengths
    return {
      split: self._generate_examples(examples)
      for split, examples in splits.items()
    }

  def _generate_examples(self, examples):
    sr = self.builder_config.sample_rate
    extra = self.extra_features()
    for ex in examples:
      out = {'key': ex.key}
      for name in self.signals():
        x, _ = audio_io.read_audio(ex.files[name], sr, mono='error')
        out[name] = audio_io.to_int16(x)
      lengths = {len(out[n]) for n in self.signals()}
      if len(lengths) > 1:  # e.g. a clean/noisy pair one sample apart
        n = min(lengths)
        for name in self.signals():
          out[name] = out[name][:n]
      for name in extra:
        out[name] = ex.meta[name]
      yield ex.key, out


class VoicebankDemand(_CorpusBuilder):
  """VoiceBank+DEMAND, 28-speaker version (noisy/clean pairs)."""

  BUILDER_CONFIGS = [
    AudioConfig(name='16k', description='Resampled to 16 kHz.'),
    AudioConfig(name='48k', description='Native 48 kHz.', sample_rate=48000),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the 28-speaker VoiceBank+DEMAND set (Valentini-Botinhao 2017,
  University of Edinburgh DataShare, doi:10.7488/ds/2117) and unzip it so that
  `manual_dir` contains the folders
    clean_trainset_28spk_wav/  noisy_trainset_28spk_wav/
    clean_testset_wav/         noisy_testset_wav/
  """
  DESCRIPTION = (
    'VoiceBank+DEMAND: 11,572 training and 824 test noisy/clean pairs. '
    'Speakers p226 and p287 are held out of training as validation.'
  )
  HOMEPAGE = 'https://doi.org/10.7488/ds/2117'
  CITATION = (
    'Valentini-Botinhao et al., Investigating RNN-based speech '
    'enhancement methods for noise-robust text-to-speech, SSW 2016.'
  )

  def signals(self):
    return ('noisy', 'clean')

  def scan(self, root):
    return layouts.scan_voicebank_demand(root)

  def extra_features(self):
    return {'speaker': tfds.features.Text()}


class Ndns(_CorpusBuilder):
  """Intel N-DNS / DNS Challenge synthesised sets (noisy, clean, noise)."""

  BUILDER_CONFIGS = [AudioConfig(name='16k', description='16 kHz.')]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Synthesise the Intel N-DNS Challenge data (`noisyspeech_synthesizer.py`,
  training and validation sets) or your own with `launch/synthesize.py`, so
  that `manual_dir` contains
    training_set/{noisy,clean,noise}/   validation_set/{noisy,clean,noise}/
  and optionally test_set/{noisy,clean,noise}/.
  """
  DESCRIPTION = (
    'Intel Neuromorphic DNS Challenge data: 30 s clips at 16 kHz, '
    'matched across noisy/clean/noise by fileid.'
  )
  HOMEPAGE = 'https://github.com/IntelLabs/IntelNeuromorphicDNSChallenge'
  CITATION = (
    'Timcheck et al., The Intel Neuromorphic DNS Challenge, '
    'Neuromorph. Comput. Eng. 3:034005, 2023.'
  )

  def signals(self):
    return ('noisy', 'clean', 'noise')

  def scan(self, root):
    return layouts.scan_ndns(root)

  def extra_features(self):
    return {
      'fileid': tfds.features.Scalar(dtype=np.int64),
      'snr': tfds.features.Scalar(dtype=np.float32),
      'target_level': tfds.features.Scalar(dtype=np.float32),
    }


def _mix_configs(num_sources_list, rates):
  out = []
  for n in num_sources_list:
    for sr in rates:
      for mode in ('min', 'max'):
        for mixture in layouts.MIXTURE_TYPES:
          prefix = f'{n}mix_' if len(num_sources_list) > 1 else ''
          out.append(
            AudioConfig(
              name=f'{prefix}wav{sr // 1000}k_{mode}_{mixture}',
              description=f'{n} speakers, {sr} Hz, {mode}, mix_{mixture}.',
              sample_rate=sr,
              num_sources=n,
              mode=mode,
              mixture=mixture,
            )
          )
  return out


class _MixBuilder(_CorpusBuilder, skip_registration=True):
  def signals(self):
    cfg = self.builder_config
    count = 1 if cfg.mixture == 'single' else cfg.num_sources
    names = ['mixture'] + [f's{i + 1}' for i in range(count)]
    return tuple(names + (['noise'] if cfg.mixture != 'clean' else []))


class Librimix(_MixBuilder):
  """LibriMix: LibriSpeech speakers mixed, optionally with WHAM! noise."""

  BUILDER_CONFIGS = _mix_configs((2, 3), (8000, 16000))
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Generate LibriMix with `generate_librimix.sh storage_dir` (JorisCos/LibriMix)
  and point `manual_dir` at `storage_dir` (or at its Libri2Mix/ folder). It
  must contain Libri2Mix/wav8k|wav16k/min|max/<subset>/{mix_clean,mix_both,
  mix_single,s1,s2,noise}/ for subsets train-100, train-360, dev, test (any
  present subset is used) and the metadata/ CSVs.
  """
  DESCRIPTION = (
    'LibriMix separation mixtures; splits train (train-100), train360, '
    'validation (dev), test.'
  )
  HOMEPAGE = 'https://github.com/JorisCos/LibriMix'
  CITATION = (
    'Cosentino et al., LibriMix: An Open-Source Dataset for Generalizable '
    'Speech Separation, arXiv:2005.11262, 2020.'
  )

  def scan(self, root):
    cfg = self.builder_config
    return layouts.scan_librimix(
      root,
      num_sources=cfg.num_sources,
      sample_rate=cfg.sample_rate,
      mode=cfg.mode,
      mixture=cfg.mixture,
    )


class Wham(_MixBuilder):
  """WHAM!: wsj0-2mix with real ambient noise."""

  BUILDER_CONFIGS = _mix_configs((2,), (8000, 16000))
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Create WHAM! with `create_wham_from_scratch.py` (needs WSJ0 from the LDC
  and the WHAM! noise) and point `manual_dir` at its output folder, which
  contains wav8k|wav16k/min|max/{tr,cv,tt}/{mix_clean,mix_both,mix_single,
  s1,s2,noise}/.
  """
  DESCRIPTION = 'WHAM! noisy two-speaker mixtures: tr, cv, tt.'
  HOMEPAGE = 'http://wham.whisper.ai/'
  CITATION = (
    'Wichern et al., WHAM!: Extending Speech Separation to Noisy '
    'Environments, Interspeech 2019.'
  )

  def scan(self, root):
    cfg = self.builder_config
    return layouts.scan_wham(
      root, sample_rate=cfg.sample_rate, mode=cfg.mode, mixture=cfg.mixture
    )


BUILDERS = {
  'voicebank_demand': VoicebankDemand,
  'ndns': Ndns,
  'librimix': Librimix,
  'wham': Wham,
}


def config_name(
  name: str,
  *,
  sample_rate: int,
  num_sources: int = 2,
  mode: str = 'min',
  mixture: str = 'clean',
) -> str:
  """The builder config that stores a corpus at (or nearest) `sample_rate`.

  VoiceBank+DEMAND and N-DNS store 16 kHz (VoiceBank also 48 kHz); LibriMix
  and WHAM! exist at 8 and 16 kHz. The input pipeline resamples from the
  stored rate to the model's rate when they differ.
  """
  if name not in BUILDERS:
    raise ValueError(f'Unknown corpus {name!r}; known: {sorted(BUILDERS)}.')
  if name == 'voicebank_demand':
    return '48k' if sample_rate == 48000 else '16k'
  if name == 'ndns':
    return '16k'
  rate = 8 if sample_rate <= 8000 else 16
  prefix = f'{num_sources}mix_' if name == 'librimix' else ''
  if name == 'wham' and num_sources != 2:
    raise ValueError(f'WHAM! has 2 speakers per mixture, not {num_sources}.')
  if name == 'librimix' and num_sources not in (2, 3):
    raise ValueError(f'LibriMix has 2 or 3 speakers, not {num_sources}.')
  return f'{prefix}wav{rate}k_{mode}_{mixture}'


def prepare(
  name: str, config: str, manual_dir: str, data_dir: str = ''
) -> tfds.core.DatasetBuilder:
  """Builds (once) and returns a corpus in the ArrayRecord format.

  Args:
    name: one of BUILDERS.
    config: a builder config name (see `config_name`).
    manual_dir: the folder holding the corpus layout.
    data_dir: where tensorflow-datasets stores the built data ('' = its
      default, ~/tensorflow_datasets).

  Returns:
    The prepared builder; read it with `builder.as_data_source(split)`.

  Raises:
    layouts.LayoutError: `manual_dir` does not hold the expected layout.
  """
  cls = BUILDERS[name]
  builder = cls(
    config=config, data_dir=data_dir or None, file_format='array_record'
  )
  if builder.is_prepared():
    return builder
  if not manual_dir:
    raise layouts.LayoutError(
      f'Corpus {name!r} is not built yet under {builder.data_dir}; set '
      f'config.data.manual_dir to the folder that holds it.\n'
      f'{cls.MANUAL_DOWNLOAD_INSTRUCTIONS}'
    )
  builder.scan(os.path.abspath(manual_dir))  # fail early, clearly
  tfds.disable_progress_bar()
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=os.path.abspath(manual_dir)
    )
  )
  return builder
