"""local_hub"""
