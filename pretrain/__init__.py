"""M2D pre-training: the objective (online encoder, predictor, EMA target) and the training loop."""
