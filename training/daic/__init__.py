"""DAIC-WOZ corpus access for training: pure file readers (see ``files``)."""

from training.daic.files import (
    CLNF_KINDS,
    EXCLUDED_SESSIONS,
    PHQ8_ITEMS,
    ClnfTrack,
    DaicFileError,
    ExcludedSessionError,
    SessionFiles,
    SessionLabel,
    excluded_reason,
    read_clnf,
    read_split,
    session_files,
)

__all__ = [
    "CLNF_KINDS",
    "EXCLUDED_SESSIONS",
    "PHQ8_ITEMS",
    "ClnfTrack",
    "DaicFileError",
    "ExcludedSessionError",
    "SessionFiles",
    "SessionLabel",
    "excluded_reason",
    "read_clnf",
    "read_split",
    "session_files",
]
