"""Which language the participant's words are in (py3langid: 97 languages, its profiles ship in the wheel).

The text encoder and the fusion model were trained on English interviews: text in another
language would be embedded as noise and scored as if it were evidence. So a transcript
that is clearly not English is not used, and said so; one too short to tell is used.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

# Below this many words the identifier guesses: short English answers ("yeah", "okay I
# guess") come out as Northern Sami or Pidgin; at 20 words of interview speech its answer
# for English, French, German, Spanish... is stable.
MIN_LANGUAGE_WORDS = 20
# a non-English answer counts only this sure (normalised probability over the 97 languages)
NON_ENGLISH_CONFIDENCE = 0.95
# the identifier reads a sample of this many characters, enough to be sure and bounded in time
SAMPLE_CHARACTERS = 20_000

LANGUAGE_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "bn": "Bengali", "ca": "Catalan", "cs": "Czech",
    "cy": "Welsh", "da": "Danish", "de": "German", "el": "Greek", "en": "English", "es": "Spanish",
    "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French", "ga": "Irish",
    "gl": "Galician", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian",
    "is": "Icelandic", "it": "Italian", "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian",
    "ms": "Malay", "nb": "Norwegian", "nl": "Dutch", "no": "Norwegian", "pl": "Polish", "pt": "Portuguese",
    "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian", "sq": "Albanian", "sr": "Serbian",
    "sv": "Swedish", "sw": "Swahili", "ta": "Tamil", "th": "Thai", "tl": "Tagalog", "tr": "Turkish",
    "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}  # fmt: skip


@dataclass(frozen=True)
class LanguageGuess:
    code: str | None  # ISO 639-1, None when too few words to tell
    probability: float
    words: int

    @property
    def name(self) -> str:
        if self.code is None:
            return "an undetermined language"
        return LANGUAGE_NAMES.get(self.code, f"the language with code '{self.code}'")

    @property
    def clearly_not_english(self) -> bool:
        return self.code is not None and self.code != "en" and self.probability >= NON_ENGLISH_CONFIDENCE


_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _identifier():
    # loaded once per process (about a second: it unpacks its profiles)
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def warm() -> None:
    """Load the profiles before the first request needs them."""
    with _LOCK:
        _identifier()


def identify(texts: list[str]) -> LanguageGuess:
    """The language of these utterances together; ``code`` None under ``MIN_LANGUAGE_WORDS`` words."""
    words = sum(len(text.split()) for text in texts)
    if words < MIN_LANGUAGE_WORDS:
        return LanguageGuess(None, 0.0, words)
    sample = " ".join(texts)[:SAMPLE_CHARACTERS]
    with _LOCK:
        code, probability = _identifier().classify(sample)
    return LanguageGuess(str(code), float(probability), words)
