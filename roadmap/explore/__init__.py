"""Design-space explorations: the space of networks (space), the Optuna study that draws them (study), the analysis
of a population (analysis)."""
