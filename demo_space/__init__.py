"""demo_space"""
