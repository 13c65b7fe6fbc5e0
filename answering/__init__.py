"""How an answer is made at run time, in one place: the decision readings (answer or refuse, which chunk)
read from a model's probabilities, the thresholds and fusion that turn them into a decision
(`decision`), and the answer modes that write the answer once it is decided (`answer`).

Training (tuning what ships), evaluation (scoring it) and the demo (using it) import this package; it
imports only the prompt contract from `dataset_builder`.
"""
