"""Trainers, datasets, packers and synthetic-occlusion generators: never imported by inference."""
