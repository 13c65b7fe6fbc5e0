"""evaluation: base vs adapter on the held-out split (generation metrics, refusals, citations, loss)."""
