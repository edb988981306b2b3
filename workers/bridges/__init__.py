"""The bridges stage: a weight-sparse model trained jointly with bridges to a frozen dense model (paper §2.3, §3.3, A.3, A.4).

bridges.py        the bridge modules, hybrid forward passes and the A.3 loss
worker.py         the stage worker (training through pretrain's loop, outputs)
interventions.py  steering the dense model with a sparse node through a bridge (A.4, Fig. 9)
stage.py          cells, plan-time checks and the Stage declaration
bench.py          bridges step time over a sparse pretrain step on the same shapes

Nothing here is imported by `plan`: stage.py imports torch-free modules only.
"""
