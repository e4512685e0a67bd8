"""The speech stage, between probe and features: whose voice is where.

``sources``: which audio track, and which channel of a two-channel call recording, holds
the participant, chosen by a client option or a stated rule, and reported either way.
"""
