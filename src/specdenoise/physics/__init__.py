"""Physics of the embedded universe: constants, population relations, stellar and nebular
grids, sky noise, E-MILES templates."""
