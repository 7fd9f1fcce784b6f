"""User code of the petseg pipeline: feature keys, preprocessing, model, training, serving and metrics."""
