"""The matched_dense stage: for each sparse model, the dense checkpoint nearest its pretraining loss (Fig. 2)."""
