"""foveate.report: comparisons of sampling variants, their pooled numbers, figures and report files."""

from .compare import Comparison, compare, compare_command, headline, pool_saved
from .pooling import RunRecord, crossing, pool, value_at
from .writing import settings_markdown, summary_table, write_markdown, write_settings_summary

__all__ = [
    "Comparison",
    "RunRecord",
    "compare",
    "compare_command",
    "crossing",
    "headline",
    "pool",
    "pool_saved",
    "settings_markdown",
    "summary_table",
    "value_at",
    "write_markdown",
    "write_settings_summary",
]
