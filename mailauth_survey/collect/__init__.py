"""Orchestration: domain lists → per-domain collection rounds → stored answers → snapshot parts."""

from .engine import ScanError, ScanOptions, retry_errors, scan

__all__ = ["ScanError", "ScanOptions", "retry_errors", "scan"]
