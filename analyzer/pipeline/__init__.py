"""The offline pipeline as one call: ``analyze_files(paths, AnalyzeOptions())`` gives a ``Report``."""

from .offline import Attributor, Report, analyze_files, contacts_from_evidence
from .options import AnalyzeOptions

__all__ = ["AnalyzeOptions", "Attributor", "Report", "analyze_files", "contacts_from_evidence"]
