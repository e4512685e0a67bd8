"""A parsed transcript: its utterances, speakers, dialect and encoding, and who the participant is."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.features.transcript.speakers import SpeakerSelection, select_participant
from app.features.transcript.utterance import FORMAT_CSV, FORMAT_TEXT, Utterance

# Unlabelled files of these formats are usually the participant's words alone (answers
# pasted as text; E-DAIC's ASR CSVs hold the participant only): no warning for them. Other
# unlabelled files (speech-to-text and caption output) usually hold every voice in the room.
_UNLABELLED_IS_USUAL = frozenset({FORMAT_TEXT, FORMAT_CSV})


@dataclass(frozen=True)
class Transcript:
    format: str  # the base format (FORMATS)
    utterances: list[Utterance]  # every speaker's, in file order
    speakers: list[str] = field(default_factory=list)  # distinct labels, in order of first appearance
    has_timestamps: bool = False  # every utterance has a start time
    dialect: str = ""  # the format as the tool that wrote it: "webvtt (zoom)", "aws transcribe json", ...
    encoding: str = "utf-8"  # the encoding the bytes were decoded from

    def select_participant(self, participant_speaker: str | None = None) -> SpeakerSelection | None:
        """Who the participant is and why (see ``speakers.select_participant``); None without speaker labels.

        A ``TranscriptError`` when ``participant_speaker`` names no speaker (or the transcript has
        none: the request cannot be honoured, and using every line could feed an interviewer's
        words to the model), or when no rule can tell.
        """
        return select_participant(self.speakers, self.utterances, participant_speaker, self.dialect or self.format)

    def participant_labels(self, participant_speaker: str | None = None) -> list[str]:
        """The speaker labels taken as the patient; empty when the transcript has no speakers."""
        selection = self.select_participant(participant_speaker)
        return list(selection.chosen) if selection is not None else []

    def participant(self, participant_speaker: str | None = None) -> list[Utterance]:
        """The patient's utterances; all of them when there are no speakers."""
        return self.utterances_of(self.select_participant(participant_speaker))

    def utterances_of(self, selection: SpeakerSelection | None) -> list[Utterance]:
        if selection is None:
            return list(self.utterances)
        labels = set(selection.chosen)
        return [u for u in self.utterances if u.speaker in labels]

    def unlabelled_warning(self) -> str | None:
        """A warning when every line is taken as the participant's although the file type usually holds every voice."""
        if self.speakers or not self.utterances or self.format in _UNLABELLED_IS_USUAL:
            return None
        return (
            f"the transcript ({self.dialect or self.format}) has no speaker labels, so every line was taken as the "
            "participant's; if it holds the interviewer's words too, send it with speaker labels"
        )
