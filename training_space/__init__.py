"""training_space"""
