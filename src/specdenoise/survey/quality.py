"""Per-target quality bits of ``specdenoise denoise`` (the ``QUALITY`` column of the output table).

One bit per reason; a target with any of :data:`SKIP_BITS` set is not de-noised (its image rows
are NaN, ``IVAR`` 0 and ``MASK`` 1), a target with only :attr:`Quality.OUT_OF_DOMAIN` is
de-noised but its output should not be trusted. ``QUALITY == 0`` is a good target.

The bits are written into the output header as ``QUALBITn`` cards with these descriptions
(:func:`header_cards`), and into the README's data-model section.
"""

from __future__ import annotations

import enum


class Quality(enum.IntFlag):
    """Why a target was flagged (bit values of the ``QUALITY`` column)."""

    #: No usable pixel, non-finite flux under a positive ivar, negative/non-finite ivar, or a
    #: non-positive normalisation.
    BAD_INPUT = 1
    #: Redshift missing, non-finite or outside the model's range [0, ``z_max``).
    Z_RANGE = 2
    #: The spectral type (Redrock ``SPECTYPE``, SDSS ``CLASS`` or the catalogue's) is not GALAXY.
    NOT_GALAXY = 4
    #: More of the rest-frame grid uncovered than ``--max-masked`` allows.
    UNCOVERED = 8
    #: The input is not within the de-noiser's reach: the reduced chi^2 of the output against the
    #: input, with the output's own variance (SIGMA^2) added to the input's, is above ``--ood-chi2``.
    OUT_OF_DOMAIN = 16


#: Bits that stop a target from being de-noised.
SKIP_BITS = Quality.BAD_INPUT | Quality.Z_RANGE | Quality.NOT_GALAXY | Quality.UNCOVERED

DESCRIPTIONS: dict[Quality, str] = {
    Quality.BAD_INPUT: "no good pixel/NaN flux/bad ivar,norm",
    Quality.Z_RANGE: "z missing or not in [0, ZMAX)",
    Quality.NOT_GALAXY: "SPECTYPE not GALAXY",
    Quality.UNCOVERED: "MASKED_FRAC > MAXMASK",
    Quality.OUT_OF_DOMAIN: "CHI2_PRED > OODCHI2 (kept)",
}


def header_cards() -> list[tuple[str, int, str]]:
    """``(QUALBITn, value, description)`` for every bit, for the output header."""
    return [(f"QUALBIT{int(q).bit_length() - 1}", int(q), f"{q.name}: {DESCRIPTIONS[q]}") for q in Quality]


def names(value: int) -> list[str]:
    """The names of the bits set in ``value`` (e.g. ``["Z_RANGE", "UNCOVERED"]``)."""
    return [q.name for q in Quality if int(value) & int(q)]
