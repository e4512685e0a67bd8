"""Licensed corpora for training: DAIC-WOZ (``files``) and E-DAIC (``edaic``) file readers,
the mapping of their tracker outputs to the served features (``mapping``) and sessions as
serve-time feature tracks (``sessions``)."""

from training.daic.edaic import (
    EdaicSessionFiles,
    OpenFaceTrack,
    edaic_session_files,
    looks_like_edaic,
    read_edaic_labels,
    read_openface,
)
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
    "EdaicSessionFiles",
    "ExcludedSessionError",
    "OpenFaceTrack",
    "SessionFiles",
    "SessionLabel",
    "edaic_session_files",
    "excluded_reason",
    "looks_like_edaic",
    "read_clnf",
    "read_edaic_labels",
    "read_openface",
    "read_split",
    "session_files",
]
