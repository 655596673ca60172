"""Monitoring-cue probes (docs/probes.md).

The same input sent twice, once with a cue saying the model is watched and once saying it is not:

* :mod:`.cues` writes such pairs (``janus probe make``; Janus never calls a model);
* :mod:`.pairing` puts the logged answers back together by ``probe.pair_id``, counting what
  cannot be paired;
* :mod:`.features` says which features a pair is compared on; :mod:`.stats` runs the exact paired
  tests (McNemar, Holm, Newcombe intervals) and :mod:`.analyze` drives ``janus probe analyze``;
* :mod:`.sequential` is the stream's per-model :class:`~.sequential.CueDetector` raising ``cue``
  alerts, wired into :class:`detector.pipeline.Pipeline`.

Submodules are imported where needed (the simulator uses :mod:`.cues` without the rest).
"""
