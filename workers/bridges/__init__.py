"""The bridges stage: a weight-sparse model trained jointly with bridges to a frozen dense model.

Paper §2.3, §3.3, A.3, A.4.

config.py         the `bridges` section (BridgesConfig, InterventionConfig) and its preset values
bridges.py        the bridge modules, hybrid forward passes and the A.3 loss
worker.py         the stage worker (training through train/worker.py's loop, outputs)
interventions.py  steering the dense model with a sparse node through a bridge (A.4, Fig. 9)
stage.py          cells, plan-time checks, the Stage declaration and the benchmark's
bench.py          bridges step time over a sparse pretrain step on the same shapes (`sparsepipe bench bridges`)

`plan` imports stage.py and config.py only, which import no torch.
"""
