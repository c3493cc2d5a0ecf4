"""Training one family at one latent dimension: the splits (``splits``) and the ``train`` stage."""
