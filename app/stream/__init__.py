"""Live sessions on /stream: the protocol (``protocol``), the media written as it arrives
(``recording``) and the session that hands it to the one pipeline (``session``)."""
