"""Survey spectrum readers: SDSS spec-lite / DR7 spSpec, DESI coadds, MPA-JHU catalogues."""
