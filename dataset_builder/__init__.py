"""dataset_builder"""
