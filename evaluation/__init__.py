"""Evaluation of M2D representations: tasks, embedding cache, linear probe, fine-tuning, HEAR, tables."""
