"""The human review loop (docs/review.md): audit sample, verdicts, weighted violation rates,
and protocol changes (a production model version the active baseline was not built on)."""

from detector.review.protocol import NOTICE, PROTOCOL, protocol_events
from detector.review.sample_size import rates_for_target, sample_size, z_value
from detector.review.sampler import SCHEMA, ReviewSampler, SampleWriter, encode_sample, stratum_rates, uniforms
from detector.review.summary import (
    ReviewStatus,
    ReviewSummary,
    review_summary,
    summarize,
    summary_from_files,
    weighted_rate,
    wilson,
)
from detector.review.verdicts import (
    VERDICTS,
    SampleIndex,
    VerdictLog,
    default_sample_paths,
    parse_verdict,
    review_dir,
    verdict_log_path,
)

__all__ = [
    "NOTICE", "PROTOCOL", "SCHEMA", "VERDICTS", "ReviewSampler", "ReviewStatus", "ReviewSummary", "SampleIndex",
    "SampleWriter", "VerdictLog", "default_sample_paths", "encode_sample", "parse_verdict", "protocol_events",
    "rates_for_target", "review_dir", "review_summary", "sample_size", "stratum_rates", "summarize",
    "summary_from_files", "uniforms", "verdict_log_path", "weighted_rate", "wilson", "z_value",
]
