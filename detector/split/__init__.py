"""The split roles for one busy model (``janus serve --role featurise`` / ``--role detect``).

Featurisers, any number of them in one consumer group, read decision partitions and publish, per
block of records and per model, the count tables detection needs (:mod:`.counts`) to the counts
topic, keyed by model; one detector owns each model's Monitor and applies those counts
(:mod:`.detect`). Pure cores here; the Kafka side is :mod:`detector.stream.tasks` and
:mod:`detector.stream.service`.
"""
